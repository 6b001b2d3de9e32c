package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// readV reads the count of rows with v and where the read ran.
func readV(t *testing.T, ctx context.Context, db *sql.DB, tbl, v string) (n int, onReplica bool, took time.Duration) {
	t.Helper()
	start := time.Now()
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = $1", v).Scan(&n, &onReplica))
	return n, onReplica, time.Since(start)
}

// TestLevels checks each consistency level against a replica whose replay
// is paused, with a write made through another handle (another process):
// only Global and Primary must see it; Eventual reads the replica at once;
// a bounded read goes to the primary once the replica is further behind
// than its bound.
func TestLevels(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	writer := open(t, c)
	reader := open(t, c, "pgwait_wait_timeout=200ms", "pgwait_health_interval=50ms")
	tbl := table(t, writer)
	eventuallyOnReplica(t, ctx, reader)
	readV(t, pgwait.WithLevel(ctx, pgwait.Global), reader, tbl, "x") // the replica has the table
	require.Eventually(t, func() bool {
		var on bool
		var n int
		err := reader.QueryRowContext(pgwait.WithLevel(ctx, pgwait.BoundedStaleness(time.Second)), "SELECT pg_is_in_recovery(), (SELECT count(*) FROM "+tbl+")").Scan(&on, &n)
		return err == nil && on
	}, 10*time.Second, 20*time.Millisecond, "the replica is measured fresh")

	require.NoError(t, c.PauseReplay(ctx, 0))
	defer c.ResumeReplay(ctx, 0)
	_, err := writer.Exec("INSERT INTO " + tbl + " (v) VALUES ('other process')")
	require.NoError(t, err)

	n, on, took := readV(t, pgwait.WithLevel(ctx, pgwait.Eventual), reader, tbl, "other process")
	assert.True(t, on, "eventual reads the replica")
	assert.Zero(t, n, "the replica is paused: an eventual read may miss the write")
	assert.Less(t, took, 150*time.Millisecond, "an eventual read does not wait")

	n, on, _ = readV(t, ctx, reader, tbl, "other process")
	assert.True(t, on)
	assert.Zero(t, n, "read-your-writes covers this handle's writes only")

	n, _, _ = readV(t, pgwait.WithLevel(ctx, pgwait.Global), reader, tbl, "other process")
	assert.Equal(t, 1, n, "a global read sees every write committed before it")

	n, on, _ = readV(t, pgwait.WithLevel(ctx, pgwait.Primary), reader, tbl, "other process")
	assert.Equal(t, 1, n)
	assert.False(t, on)

	// Keep the primary moving while replay is paused: the replica falls
	// behind in time.
	for range 15 {
		_, err := writer.Exec("INSERT INTO " + tbl + " (v) VALUES (NULL)")
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
	}
	_, on, _ = readV(t, pgwait.WithLevel(ctx, pgwait.BoundedStaleness(300*time.Millisecond)), reader, tbl, "x")
	assert.False(t, on, "a replica more than 300ms behind does not serve a read bounded to it")
	_, on, _ = readV(t, pgwait.WithLevel(ctx, pgwait.BoundedStaleness(time.Minute)), reader, tbl, "x")
	assert.True(t, on, "one well within a minute does")
}

func TestGlobalByDefault(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	writer := open(t, c)
	reader := open(t, c, "pgwait_consistency=global", "pgwait_wait_timeout=5s")
	tbl := table(t, writer)
	eventuallyOnReplica(t, ctx, reader)
	for i := range 50 {
		v := sanitize(t.Name()) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		_, err := writer.Exec("INSERT INTO "+tbl+" (v) VALUES ($1)", v)
		require.NoError(t, err)
		n, _, _ := readV(t, ctx, reader, tbl, v)
		require.Equal(t, 1, n, "a global read missed a write another handle committed before it")
	}
	st := stats(t, reader)
	assert.Positive(t, st.ReplicaReads, "global reads are served by the replica")
}

func TestMaxReplicaLag(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_max_replica_lag=300ms", "pgwait_health_interval=50ms")
	tbl := table(t, db)
	eventuallyOnReplica(t, ctx, db) // a read-your-writes read: the replica has the table
	eventually := pgwait.WithLevel(ctx, pgwait.Eventual)
	onReplica := func() bool {
		var inRecovery bool
		var n int
		err := db.QueryRowContext(eventually, "SELECT pg_is_in_recovery(), (SELECT count(*) FROM "+tbl+")").Scan(&inRecovery, &n)
		return err == nil && inRecovery
	}
	require.Eventually(t, onReplica, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, c.PauseReplay(ctx, 0))
	defer c.ResumeReplay(ctx, 0)
	require.Eventually(t, func() bool {
		if _, err := db.Exec("INSERT INTO " + tbl + " (v) VALUES (NULL)"); err != nil {
			return false
		}
		_, on, _ := readV(t, eventually, db, tbl, "x")
		return !on
	}, 10*time.Second, 50*time.Millisecond, "a replica past the lag bound serves no read, not even an eventual one")
	assert.Positive(t, stats(t, db).LagExclusions)

	require.NoError(t, c.ResumeReplay(ctx, 0))
	require.Eventually(t, onReplica, 10*time.Second, 20*time.Millisecond, "caught up, it serves reads again")
}

// TestWriteVisibility: a write that asks to be visible on a replica returns
// only once a plain read of the replica (another process, no token) sees it.
func TestWriteVisibility(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_write_visibility=1", "pgwait_wait_timeout=1s", "pgwait_health_interval=50ms")
	tbl := table(t, db)
	replica, err := sql.Open("pgx", c.ReplicaDSN(0))
	require.NoError(t, err)
	defer replica.Close()
	visible := 0
	for i := range 100 {
		v := fmt.Sprint("visible", i)
		before := stats(t, db).VisibilityTimeouts
		_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", v)
		require.NoError(t, err)
		var n int
		require.NoError(t, replica.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = $1", v).Scan(&n))
		if n == 1 {
			visible++
			continue
		}
		// Not visible: only after the wait timed out (or found no replica
		// in rotation, as a loaded machine's late probe can make it), and
		// counted, never silently.
		require.Greater(t, stats(t, db).VisibilityTimeouts, before, "write %d returned before the replica had it, and no visibility timeout was counted", i)
	}
	assert.GreaterOrEqual(t, visible, 90, "writes visible on the replica when they returned")

	// A replica that cannot replay costs the write the wait timeout, then
	// the write returns (it committed), counted.
	require.NoError(t, c.PauseReplay(ctx, 0))
	defer c.ResumeReplay(ctx, 0)
	before := stats(t, db).VisibilityTimeouts
	start := time.Now()
	_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('paused')")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 800*time.Millisecond)
	assert.Equal(t, before+1, stats(t, db).VisibilityTimeouts)
	// Per call, the context decides.
	start = time.Now()
	_, err = db.ExecContext(pgwait.WithVisibility(ctx, 0), "INSERT INTO "+tbl+" (v) VALUES ('no wait')")
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 250*time.Millisecond)
}
