package pgwait_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
)

func TestLevelRoundTrip(t *testing.T) {
	for _, l := range []pgwait.Level{pgwait.ReadYourWrites, pgwait.Eventual, pgwait.Global, pgwait.Primary, pgwait.BoundedStaleness(1500 * time.Millisecond)} {
		got, err := pgwait.ParseLevel(l.String())
		require.NoError(t, err)
		assert.Equal(t, l, got)
	}
	for _, bad := range []string{"", "strong", "bounded:", "bounded:-1s", "bounded:0s", "bounded:5"} {
		_, err := pgwait.ParseLevel(bad)
		assert.ErrorContains(t, err, "want ryw, eventual", bad)
	}
}

func TestLevelFromContext(t *testing.T) {
	ctx := context.Background()
	_, ok := pgwait.LevelFrom(ctx)
	assert.False(t, ok)
	l, ok := pgwait.LevelFrom(pgwait.WithLevel(ctx, pgwait.Global))
	assert.True(t, ok)
	assert.True(t, l.IsGlobal())
	l, ok = pgwait.LevelFrom(pgwait.OnPrimary(pgwait.WithLevel(ctx, pgwait.Eventual)))
	assert.True(t, ok && l.IsPrimary(), "OnPrimary asks for Primary")
}

func TestLevelInDSN(t *testing.T) {
	cfg, err := pgwait.ParseConfig("host=p pgwait_replicas=r pgwait_consistency=bounded:2s")
	require.NoError(t, err)
	assert.Equal(t, pgwait.BoundedStaleness(2*time.Second), cfg.Level)
	dsn, err := cfg.FormatDSN()
	require.NoError(t, err)
	back, err := pgwait.ParseConfig(dsn)
	require.NoError(t, err)
	assert.Equal(t, cfg.Level, back.Level)
	_, err = pgwait.ParseConfig("host=p pgwait_consistency=strong")
	assert.ErrorContains(t, err, "bounded:DURATION")
}

func ExampleWithLevel() {
	// A dashboard that tolerates data up to 5 s old reads without waiting,
	// from a replica no more than 5 s behind (else the primary).
	ctx := pgwait.WithLevel(context.Background(), pgwait.BoundedStaleness(5*time.Second))
	l, _ := pgwait.LevelFrom(ctx)
	fmt.Println(l, l.Waits())
	// A read that must see what other processes committed, without a token.
	l, _ = pgwait.LevelFrom(pgwait.WithLevel(ctx, pgwait.Global))
	fmt.Println(l, l.Waits())
	// Output:
	// bounded:5s false
	// global true
}
