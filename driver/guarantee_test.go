package driver_test

// Regression tests for the holes in read-your-writes and session isolation
// found by review: each fails on the driver before the consistency tracker.

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// pausedRead pauses replay on c's replica, runs write, and reads back with
// read; the replica can only serve the read by waiting, which times out, so
// a correct driver answers from the primary. It resumes replay and waits
// until db reads from the replica again before returning.
func pausedRead(t *testing.T, c *pgtest.Cluster, db *sql.DB, write func(), read func() int) int {
	t.Helper()
	ctx := ctxT(t)
	eventuallyOnReplica(t, ctx, db)
	require.NoError(t, c.PauseReplay(ctx, 0))
	write()
	n := read()
	require.NoError(t, c.ResumeReplay(ctx, 0))
	eventuallyOnReplica(t, ctx, db)
	return n
}

func TestWritesThroughFunctionsAreSeen(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_wait_timeout=150ms", "pgwait_health_interval=50ms")
	tbl := table(t, db)
	_, err := db.Exec(`CREATE FUNCTION ` + tbl + `_add(v text) RETURNS int LANGUAGE sql AS $$ INSERT INTO ` + tbl + ` (v) VALUES (v) RETURNING 1 $$`)
	require.NoError(t, err)
	count := func(v string) func() int {
		return func() int {
			var n int
			require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = $1", v).Scan(&n))
			return n
		}
	}
	writes := map[string]func(v string){
		"Exec SELECT f() on the primary": func(v string) {
			_, err := db.ExecContext(pgwait.OnPrimary(ctx), "SELECT "+tbl+"_add($1)", v)
			require.NoError(t, err)
		},
		"Query SELECT f() on the primary": func(v string) {
			var one int
			require.NoError(t, db.QueryRowContext(pgwait.OnPrimary(ctx), "SELECT "+tbl+"_add($1)", v).Scan(&one))
		},
		"read-write transaction of SELECT f() only": func(v string) {
			tx, err := db.BeginTx(ctx, nil)
			require.NoError(t, err)
			var one int
			require.NoError(t, tx.QueryRow("SELECT "+tbl+"_add($1)", v).Scan(&one))
			require.NoError(t, tx.Commit())
		},
		"hinted SELECT f()": func(v string) {
			_, err := db.ExecContext(ctx, "/* pgwait:primary */ SELECT "+tbl+"_add($1)", v)
			require.NoError(t, err)
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			v := sanitize(name)
			n := pausedRead(t, c, db, func() { write(v) }, count(v))
			assert.Equal(t, 1, n, "the read missed a write made through a function")
		})
	}
}

// TestTenantSwitchesNeverLeak switches a row-level-security tenant on one
// pooled connection many times, with SET (replayed on every server, reads
// on the replica) and with set_config() (which pins the connection to the
// primary), and checks that every read sees exactly its tenant's rows.
func TestTenantSwitchesNeverLeak(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c)
	tbl := table(t, db)
	for _, stmt := range []string{
		"CREATE ROLE " + tbl + "_app",
		"GRANT SELECT ON " + tbl + " TO " + tbl + "_app",
		"ALTER TABLE " + tbl + " ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY tenant ON " + tbl + " USING (v = current_setting('app.tenant', true))",
		"INSERT INTO " + tbl + " (v) VALUES ('A'), ('B')",
	} {
		_, err := db.Exec(stmt)
		require.NoError(t, err, stmt)
	}
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET ROLE "+tbl+"_app")
	require.NoError(t, err)

	leaks := 0
	check := func(tenant string) (onReplica bool) {
		rows, err := conn.QueryContext(ctx, "SELECT v, pg_is_in_recovery() FROM "+tbl)
		require.NoError(t, err)
		defer rows.Close()
		n := 0
		for rows.Next() {
			var v string
			require.NoError(t, rows.Scan(&v, &onReplica))
			if v != tenant {
				leaks++
			}
			n++
		}
		require.NoError(t, rows.Err())
		assert.Equal(t, 1, n, "tenant %s sees its one row", tenant)
		return onReplica
	}
	replicaReads := 0
	for i := range 40 {
		tenant := []string{"A", "B"}[i%2]
		_, err := conn.ExecContext(ctx, "SET app.tenant = '"+tenant+"'")
		require.NoError(t, err)
		if check(tenant) {
			replicaReads++
		}
	}
	assert.Positive(t, replicaReads, "SET is replayed on the replica, which serves the reads")
	for i := range 40 {
		tenant := []string{"A", "B"}[i%2]
		_, err := conn.ExecContext(ctx, "SELECT set_config('app.tenant', $1, false)", tenant)
		require.NoError(t, err)
		assert.False(t, check(tenant), "set_config pins the connection to the primary")
	}
	// DISCARD ALL resets the session everywhere and unpins.
	_, err = conn.ExecContext(ctx, "DISCARD ALL")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "SET ROLE "+tbl+"_app")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "SET app.tenant = 'B'")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return check("B") }, 10*time.Second, 20*time.Millisecond, "after DISCARD ALL reads go to the replica again")
	assert.Zero(t, leaks, "reads that saw another tenant's rows")
	assert.Positive(t, stats(t, db).PinnedConns)
}

func TestTemporaryTablesAreReadWhereTheyLive(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)
	_, err := db.Exec("INSERT INTO " + tbl + " (v) SELECT g::text FROM generate_series(1, 5) g")
	require.NoError(t, err)
	eventuallyOnReplica(t, ctx, db)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	// A temporary table of the same name hides the permanent one in this
	// session only.
	_, err = conn.ExecContext(ctx, "CREATE TEMP TABLE "+tbl+" (id bigint, v text, n int)")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (1, 'temp', 0)")
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n))
	assert.Equal(t, 1, n, "the read saw the permanent table, not the session's temporary one")
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow("SELECT count(*) FROM "+tbl).Scan(&n))
	require.NoError(t, tx.Commit())
	assert.Equal(t, 1, n, "a read-only transaction saw the permanent table")
	_, err = conn.ExecContext(ctx, "DISCARD ALL")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n))
	assert.Equal(t, 5, n, "after DISCARD ALL the temporary table is gone")
}

func TestSessionAdvisoryLockPinsTheConnection(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	eventuallyOnReplica(t, ctx, db)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	assert.True(t, onReplica(t, ctx, conn, "SELECT pg_is_in_recovery()"))
	var locked bool
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(424242)").Scan(&locked))
	require.True(t, locked)
	assert.False(t, onReplica(t, ctx, conn, "SELECT pg_is_in_recovery()"), "the lock's session is on the primary: so are the connection's next statements")
	_, err = conn.ExecContext(ctx, "SELECT pg_advisory_unlock_all()")
	require.NoError(t, err)
}

func TestForgedTokenHarmsNobody(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_wait_timeout=200ms", "pgwait_health_interval=50ms")
	eventuallyOnReplica(t, ctx, db)
	before := stats(t, db)
	for _, text := range []string{"FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF@1", "10/0@7"} {
		tok, err := pgwait.ParseToken(text)
		require.NoError(t, err)
		var inRecovery bool
		start := time.Now()
		require.NoError(t, db.QueryRowContext(pgwait.WithToken(ctx, tok), "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		assert.Less(t, time.Since(start), 150*time.Millisecond, "%s: a forged token makes nobody wait out the timeout", text)
		assert.True(t, inRecovery, "%s: the replica serves the read", text)
		l, tli := tok.Position()
		assert.LessOrEqual(t, l, mustHighWater(t, db), "%s: the token is reset to a position the primary reached", text)
		assert.Equal(t, uint32(1), tli)
		// Everyone else keeps reading from the replica.
		assert.True(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery()"), "%s", text)
	}
	after := stats(t, db)
	assert.Equal(t, before.Ejections, after.Ejections, "no replica left the rotation")
	assert.Equal(t, before.WaitTimeouts, after.WaitTimeouts)
	assert.Equal(t, before.TokensReset+3, after.TokensReset)
}

func TestTokenFromALaterTimelineCoversOwnWrites(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_scope=token", "pgwait_wait_timeout=150ms", "pgwait_health_interval=50ms")
	tbl := table(t, db)
	// An honest token from before the cluster was rebuilt: its timeline is
	// later than the new cluster's.
	tok, err := pgwait.ParseToken("0/10@5")
	require.NoError(t, err)
	tctx := pgwait.WithToken(ctx, tok)
	n := pausedRead(t, c, db, func() {
		_, err := db.ExecContext(tctx, "INSERT INTO "+tbl+" (v) VALUES ('mine')")
		require.NoError(t, err)
	}, func() int {
		var n int
		require.NoError(t, db.QueryRowContext(tctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'mine'").Scan(&n))
		return n
	})
	assert.Equal(t, 1, n, "the read missed the caller's own write")
	_, tli := tok.Position()
	assert.Equal(t, uint32(1), tli, "the write moved the token onto the cluster's timeline")
}

func TestDriverOpenLeavesNothingBehind(t *testing.T) {
	dsn := dsnFor(t, shared(t))
	countConns := func() int {
		db := open(t, shared(t))
		var n int
		require.NoError(t, db.QueryRowContext(pgwait.OnPrimary(context.Background()),
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name = 'pgwait-open-test'").Scan(&n))
		return n
	}
	goroutines := runtime.NumGoroutine()
	for range 20 {
		conn, err := pgwaitdriver.Driver{}.Open(dsn + " application_name=pgwait-open-test")
		require.NoError(t, err)
		_, err = conn.(*pgwaitdriver.Conn).ExecContext(context.Background(), "SELECT 1", nil)
		require.NoError(t, err)
		require.NoError(t, conn.Close())
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+2 }, 5*time.Second, 20*time.Millisecond,
		"goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
	require.Eventually(t, func() bool { return countConns() == 0 }, 5*time.Second, 50*time.Millisecond, "server connections left open")
}

func TestTokenHostileTexts(t *testing.T) {
	for _, text := range []string{"FFFFFFFF/FFFFFFFF@0", "1/1@99999999999", " 0/1", "0/1@", "@1", "0/1@-1"} {
		_, err := pgwait.ParseToken(text)
		assert.Error(t, err, fmt.Sprintf("%q", text))
	}
}
