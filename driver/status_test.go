package driver_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// replicaStatus returns the status of db's only replica.
func replicaStatus(t testing.TB, db *sql.DB) pgwait.ReplicaStatus {
	t.Helper()
	rs, err := pgwaitdriver.ReplicasOf(t.Context(), db)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0]
}

// TestReplicasOf follows one replica through the rotation: serving reads,
// behind (replay paused) and back, then unreachable (killed) and back.
func TestReplicasOf(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_health_interval=50ms", "pgwait_wait_timeout=200ms")
	tbl := table(t, db)
	eventuallyOnReplica(t, ctx, db)

	st := replicaStatus(t, db)
	assert.Equal(t, hostPort(t, c.ReplicaDSN(0)), st.Addr)
	assert.Equal(t, pgwait.ReplicaInRotation, st.State)
	assert.Empty(t, st.Reason)
	assert.NotZero(t, st.Reads)
	require.Eventually(t, func() bool {
		st = replicaStatus(t, db)
		return st.LagKnown && !st.Probed.IsZero() && st.LagBytesKnown && st.Replayed != 0
	}, 10*time.Second, 20*time.Millisecond, "a probe measures the lag: %+v", st)

	// Behind: the wait for a write times out, the primary serves the read,
	// and the replica leaves the rotation until it catches up.
	require.NoError(t, c.PauseReplay(ctx, 0))
	_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('behind')")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n))
	assert.Equal(t, 1, n)
	st = replicaStatus(t, db)
	assert.Contains(t, []pgwait.ReplicaState{pgwait.ReplicaEjected, pgwait.ReplicaProbing}, st.State)
	assert.Equal(t, "behind", st.Reason)
	assert.WithinDuration(t, time.Now(), st.Since, 5*time.Second)
	assert.NotZero(t, st.Needs)
	assert.Equal(t, uint64(1), st.Ejections)
	assert.Equal(t, uint64(1), st.WaitTimeouts)
	assert.Equal(t, uint64(1), st.Fallbacks)
	assert.NotZero(t, st.Waits)
	// Probes still reach it: they measure how far its replay lags.
	require.Eventually(t, func() bool {
		st = replicaStatus(t, db)
		return st.LagKnown && st.Lag > 0 && st.LagBytesKnown && st.LagBytes > 0
	}, 10*time.Second, 20*time.Millisecond, "lag while replay is paused: %+v", st)

	require.NoError(t, c.ResumeReplay(ctx, 0))
	require.Eventually(t, func() bool {
		return replicaStatus(t, db).State == pgwait.ReplicaInRotation
	}, 10*time.Second, 20*time.Millisecond)
	st = replicaStatus(t, db)
	assert.Empty(t, st.Reason)
	assert.True(t, st.Since.IsZero())
	assert.Zero(t, st.Needs)
	assert.Nil(t, st.LastError, "falling behind is no error")

	// Unreachable: the probes' error is kept, and stays after it returns.
	require.NoError(t, c.KillReplica(ctx, 0))
	require.Eventually(t, func() bool {
		st = replicaStatus(t, db)
		return st.Reason == "failed" && st.LastError != nil
	}, 10*time.Second, 20*time.Millisecond, "a killed replica: %+v", st)
	assert.Equal(t, uint64(2), st.Ejections)
	assert.False(t, st.LagBytesKnown, "its position is forgotten")
	failedAt := st.LastErrorAt
	require.NoError(t, c.StartReplica(ctx, 0))
	eventuallyOnReplica(t, ctx, db)
	require.Eventually(t, func() bool {
		return replicaStatus(t, db).State == pgwait.ReplicaInRotation
	}, 10*time.Second, 20*time.Millisecond)
	st = replicaStatus(t, db)
	assert.NotNil(t, st.LastError)
	assert.False(t, st.LastErrorAt.Before(failedAt))
}

// TestConnectorReplicas: the connector answers without a connection, and
// ConnectorOf finds the one behind a *sql.DB.
func TestConnectorReplicas(t *testing.T) {
	c := shared(t)
	cfg, err := pgwait.ParseConfig(dsnFor(t, c))
	require.NoError(t, err)
	connector, err := pgwaitdriver.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	defer db.Close()
	rs := connector.Replicas()
	require.Len(t, rs, 1)
	assert.Equal(t, pgwait.ReplicaInRotation, rs[0].State)
	got, err := pgwaitdriver.ConnectorOf(t.Context(), db)
	require.NoError(t, err)
	assert.Same(t, connector, got)

	other, err := sql.Open("pgx", c.PrimaryDSN())
	require.NoError(t, err)
	defer other.Close()
	_, err = pgwaitdriver.ReplicasOf(t.Context(), other)
	assert.ErrorContains(t, err, "needs a *sql.DB opened with the pgwait driver")
}

// TestStatusOnOlderServer: the health probe's query, lag included, runs on
// servers older than 19 too.
func TestStatusOnOlderServer(t *testing.T) {
	bin, major, err := pgtest.FindOlderBinaries()
	if err != nil {
		t.Skip("no PostgreSQL older than 19 installed:", err)
	}
	t.Logf("PostgreSQL %d from %s", major, bin)
	c := pgtest.New(t, pgtest.Options{BinDir: bin})
	db := open(t, c, "pgwait_health_interval=50ms")
	table(t, db)
	var st pgwait.ReplicaStatus
	require.Eventually(t, func() bool {
		st = replicaStatus(t, db)
		return !st.Probed.IsZero() && st.LagKnown && st.LastError == nil
	}, 10*time.Second, 20*time.Millisecond, "probes of PostgreSQL %d: %+v", major, st)
	assert.Equal(t, pgwait.ReplicaInRotation, st.State)
}
