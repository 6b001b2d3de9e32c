package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// onReplica reports whether the statement ran on a server in recovery.
func onReplica(t testing.TB, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) bool {
	t.Helper()
	var inRecovery bool
	require.NoError(t, q.QueryRowContext(ctx, query, args...).Scan(&inRecovery))
	return inRecovery
}

func stats(t testing.TB, db *sql.DB) pgwait.Stats {
	t.Helper()
	st, err := pgwaitdriver.StatsOf(context.Background(), db)
	require.NoError(t, err)
	return st
}

func TestReadYourWritesUnderConcurrency(t *testing.T) {
	db := open(t, shared(t))
	db.SetMaxOpenConns(16)
	tbl := table(t, db)
	const workers, pairs = 8, 10000
	before := stats(t, db)

	var stale, failed sync.Map
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pairs / workers {
				v := fmt.Sprintf("w%d-%d", w, i)
				if _, err := db.Exec("INSERT INTO "+tbl+" (v) VALUES ($1)", v); err != nil {
					failed.Store(v, err)
					return
				}
				var n int
				if err := db.QueryRow("SELECT count(*) FROM "+tbl+" WHERE v = $1", v).Scan(&n); err != nil {
					failed.Store(v, err)
					return
				}
				if n != 1 {
					stale.Store(v, n)
				}
			}
		}()
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Errorf("pair %v failed: %v", k, v); return true })
	nStale := 0
	stale.Range(func(any, any) bool { nStale++; return true })
	assert.Zero(t, nStale, "stale reads")

	st := stats(t, db)
	reads := st.ReplicaReads + st.PrimaryReads - before.ReplicaReads - before.PrimaryReads
	replicaShare := float64(st.ReplicaReads-before.ReplicaReads) / float64(reads)
	t.Logf("%d pairs: %d stale; reads on replica %.1f%%, waits %d, skipped %d, timeouts %d, fallbacks %d, wait time %v",
		pairs, nStale, 100*replicaShare, st.Waits-before.Waits, st.WaitsSkipped-before.WaitsSkipped,
		st.WaitTimeouts-before.WaitTimeouts, st.Fallbacks-before.Fallbacks, st.WaitTime-before.WaitTime)
	assert.EqualValues(t, pairs, st.Writes-before.Writes, "every write's LSN captured")
	assert.Greater(t, replicaShare, 0.95, "reads served by the replica")
}

func TestRouting(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)

	assert.True(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery()"), "a read goes to the replica")
	assert.True(t, onReplica(t, ctx, db, "  /* leading comment */ WITH x AS (SELECT 1) SELECT pg_is_in_recovery() FROM x"))
	assert.False(t, onReplica(t, ctx, db, "INSERT INTO "+tbl+" (v) VALUES ('r1') RETURNING pg_is_in_recovery()"),
		"INSERT ... RETURNING through Query goes to the primary")
	assert.False(t, onReplica(t, ctx, db, "WITH w AS (UPDATE "+tbl+" SET n = n + 1 RETURNING 1) SELECT pg_is_in_recovery() FROM w"),
		"a data-modifying CTE goes to the primary")
	assert.False(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery() FROM "+tbl+" WHERE v = 'r1' FOR UPDATE"),
		"a locking read goes to the primary")
	assert.False(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery() FROM (SELECT nextval('"+tbl+"_id_seq')) s"),
		"nextval goes to the primary")

	// Overrides.
	assert.False(t, onReplica(t, pgwait.OnPrimary(ctx), db, "SELECT pg_is_in_recovery()"), "OnPrimary")
	assert.False(t, onReplica(t, ctx, db, "/* pgwait:primary */ SELECT pg_is_in_recovery()"), "primary hint")
	assert.True(t, onReplica(t, ctx, db, "/* pgwait:replica */ SELECT pg_is_in_recovery() FROM "+tbl+" LIMIT 1 FOR SHARE") == false,
		"a forced locking read is refused by the replica (25006) and runs on the primary")
	_, err := db.ExecContext(pgwait.OnReplica(ctx), "INSERT INTO "+tbl+" (v) VALUES ('forced')")
	require.NoError(t, err, "OnReplica never sends an INSERT to a replica")
	assert.False(t, onReplica(t, pgwait.OnReplica(ctx), db, "DELETE FROM "+tbl+" WHERE v = 'forced' RETURNING pg_is_in_recovery()"))

	// Prepared statements run on whichever server their statement goes to.
	read, err := db.PrepareContext(ctx, "SELECT pg_is_in_recovery(), count(*) FROM "+tbl+" WHERE v = $1")
	require.NoError(t, err)
	defer read.Close()
	write, err := db.PrepareContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)")
	require.NoError(t, err)
	defer write.Close()
	for i := range 5 {
		v := fmt.Sprint("p", i)
		_, err := write.ExecContext(ctx, v)
		require.NoError(t, err)
		var inRecovery bool
		var n int
		require.NoError(t, read.QueryRowContext(ctx, v).Scan(&inRecovery, &n))
		assert.True(t, inRecovery)
		assert.Equal(t, 1, n, "prepared read sees the prepared write")
	}
}

func TestReadOnlyRetryOnPrimary(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)
	fn := tbl + "_add"
	_, err := db.Exec(`CREATE FUNCTION ` + fn + `(x text) RETURNS bool LANGUAGE sql AS $$
		INSERT INTO ` + tbl + ` (v) VALUES (x); SELECT pg_is_in_recovery() $$`)
	require.NoError(t, err)
	before := stats(t, db)

	// pgwait cannot know the function writes: the replica refuses it with
	// 25006 and pgwait runs it, once, on the primary.
	assert.False(t, onReplica(t, ctx, db, "SELECT "+fn+"('via-function')"))
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+tbl+" WHERE v = 'via-function'").Scan(&n))
	assert.Equal(t, 1, n, "written exactly once and visible to the next read")
	assert.Equal(t, before.ReadOnlyRetries+1, stats(t, db).ReadOnlyRetries)
}

func TestErrorsStayPgx(t *testing.T) {
	db := open(t, shared(t))
	tbl := table(t, db)
	_, err := db.Exec("INSERT INTO "+tbl+" (v) VALUES ($1)", "dup")
	require.NoError(t, err)
	_, err = db.Exec("INSERT INTO "+tbl+" (v) VALUES ($1)", "dup")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23505", pgErr.Code)
	_, isPgErr := err.(*pgconn.PgError)
	assert.True(t, isPgErr, "GORM type-asserts *pgconn.PgError: it must not be wrapped")

	_, err = db.Query("SELECT no_such_column FROM " + tbl)
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42703", pgErr.Code, "a replica read's SQL error comes back as is")

	// The connection stays usable after errors.
	var one int
	require.NoError(t, db.QueryRow("SELECT 1").Scan(&one))
}

func TestTransactions(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.Exec("INSERT INTO " + tbl + " (v) VALUES ('tx1')")
	require.NoError(t, err)
	assert.False(t, onReplica(t, ctx, tx, "SELECT pg_is_in_recovery()"), "every statement of a read-write transaction runs on the primary")
	require.NoError(t, tx.Commit())

	ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	require.NoError(t, err)
	var inRecovery bool
	var n int
	require.NoError(t, ro.QueryRow("SELECT pg_is_in_recovery(), count(*) FROM "+tbl+" WHERE v = 'tx1'").Scan(&inRecovery, &n))
	assert.True(t, inRecovery, "a read-only transaction runs on the replica")
	assert.Equal(t, 1, n, "and sees the committed write")
	_, err = ro.Exec("INSERT INTO " + tbl + " (v) VALUES ('nope')")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "a write in a read-only transaction fails, it is not moved")
	require.NoError(t, ro.Rollback())

	rr, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	require.NoError(t, err)
	assert.True(t, onReplica(t, ctx, rr, "SELECT pg_is_in_recovery()"), "repeatable read, read only: replica")
	require.NoError(t, rr.Commit())

	ser, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelSerializable})
	require.NoError(t, err)
	assert.False(t, onReplica(t, ctx, ser, "SELECT pg_is_in_recovery()"), "a standby has no serializable: primary")
	require.NoError(t, ser.Commit())

	// A failed transaction's COMMIT reports the rollback.
	bad, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = bad.Exec("INSERT INTO " + tbl + " (v) VALUES ('tx1')")
	require.Error(t, err)
	assert.ErrorIs(t, bad.Commit(), pgx.ErrTxCommitRollback)

	// Rollback leaves nothing behind.
	rb, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = rb.Exec("INSERT INTO " + tbl + " (v) VALUES ('rolled-back')")
	require.NoError(t, err)
	require.NoError(t, rb.Rollback())
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+tbl+" WHERE v = 'rolled-back'").Scan(&n))
	assert.Zero(t, n)
}

func TestSQLTransactionBlockStaysOnPrimary(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('block')")
	require.NoError(t, err)
	assert.False(t, onReplica(t, ctx, conn, "SELECT pg_is_in_recovery()"), "inside BEGIN ... COMMIT everything stays on the primary")
	_, err = conn.ExecContext(ctx, "COMMIT")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'block'").Scan(&n))
	assert.Equal(t, 1, n, "the COMMIT's LSN was captured")
}

func TestSessionSettingsFollowReads(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET application_name = 'first'")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "SET application_name TO 'pgwait_test'")
	require.NoError(t, err)
	var name string
	var inRecovery bool
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT current_setting('application_name'), pg_is_in_recovery()").Scan(&name, &inRecovery))
	assert.True(t, inRecovery)
	assert.Equal(t, "pgwait_test", name, "a SET made before the replica connection opened is replayed on it")
	_, err = conn.ExecContext(ctx, "SET application_name = 'again'")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT current_setting('application_name')").Scan(&name))
	assert.Equal(t, "again", name, "a SET reaches an open replica connection")
}

func TestTokenScope(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t), "pgwait_scope=token")
	tbl := table(t, db)

	tok := new(pgwait.Token)
	tctx := pgwait.WithToken(ctx, tok)
	_, err := db.ExecContext(tctx, "INSERT INTO "+tbl+" (v) VALUES ('tok')")
	require.NoError(t, err)
	require.NotEmpty(t, tok.String(), "a write advances the context's token")

	// The token travels as text, e.g. through an HTTP header, to another
	// handle (another process, in real life).
	other := open(t, shared(t), "pgwait_scope=token")
	carried, err := pgwait.ParseToken(tok.String())
	require.NoError(t, err)
	var n int
	require.NoError(t, other.QueryRowContext(pgwait.WithToken(ctx, carried), "SELECT count(*) FROM "+tbl+" WHERE v = 'tok'").Scan(&n))
	assert.Equal(t, 1, n)
}

func TestRaw(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Raw(func(dc any) error {
		c := dc.(*pgwaitdriver.Conn)
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		r, err := c.Replica(ctx)
		if err != nil {
			return err
		}
		var pr, rr bool
		require.NoError(t, p.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&pr))
		require.NoError(t, r.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rr))
		assert.False(t, pr)
		assert.True(t, rr)
		return nil
	}))
}

func TestTypesScanLikePgxStdlib(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	std, err := sql.Open("pgx", shared(t).ReplicaDSN(0))
	require.NoError(t, err)
	defer std.Close()
	const q = `SELECT true, 'x'::bytea, 1::int2, 2::int4, 3::int8, 1.5::float4, 2.5::float8, 1.25::numeric(5,2),
		'2024-02-03'::date, '2024-02-03 04:05:06'::timestamp, '2024-02-03 04:05:06+02'::timestamptz,
		'{"a":1}'::json, '{"b":2}'::jsonb, 'txt'::text, 'v'::varchar(10), '{1,2}'::int[], NULL::int, 42::oid,
		'ab'::char(3), '10.0.0.1'::inet, interval '1 day', gen_random_uuid() IS NOT NULL`
	scan := func(db *sql.DB) ([]any, []string) {
		rows, err := db.QueryContext(ctx, q)
		require.NoError(t, err)
		defer rows.Close()
		types, err := rows.ColumnTypes()
		require.NoError(t, err)
		var names []string
		for _, ct := range types {
			l, _ := ct.Length()
			p, s, _ := ct.DecimalSize()
			names = append(names, fmt.Sprintf("%s/%s/%d/%d,%d", ct.DatabaseTypeName(), ct.ScanType(), l, p, s))
		}
		require.True(t, rows.Next())
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		require.NoError(t, rows.Err())
		return vals, names
	}
	got, gotTypes := scan(db)
	want, wantTypes := scan(std)
	assert.Equal(t, want, got)
	assert.Equal(t, wantTypes, gotTypes)
}

// eventuallyOnReplica waits until db serves reads from a replica again (an
// ejected replica comes back after a health probe).
func eventuallyOnReplica(t testing.TB, ctx context.Context, db *sql.DB) {
	t.Helper()
	require.Eventually(t, func() bool {
		var inRecovery bool
		return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && inRecovery
	}, 10*time.Second, 20*time.Millisecond, "the replica never came back into rotation")
}

func TestWaitTimeoutPolicies(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	const quick = "pgwait_health_interval=50ms"
	fallback := open(t, c, "pgwait_wait_timeout=150ms", quick)
	strict := open(t, c, "pgwait_wait_timeout=150ms", "pgwait_on_timeout=error", quick)
	strictShort := open(t, c, "pgwait_wait_timeout=5s", "pgwait_on_timeout=error", quick)
	tbl := table(t, fallback)
	for _, db := range []*sql.DB{fallback, strict, strictShort} {
		eventuallyOnReplica(t, ctx, db)
	}

	require.NoError(t, c.PauseReplay(ctx, 0))
	_, err := fallback.Exec("INSERT INTO " + tbl + " (v) VALUES ('paused')")
	require.NoError(t, err)

	before := stats(t, fallback)
	var n int
	var inRecovery bool
	start := time.Now()
	require.NoError(t, fallback.QueryRow("SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = 'paused'").Scan(&n, &inRecovery))
	waited := time.Since(start)
	assert.Equal(t, 1, n, "after the timeout the primary serves the read, fresh")
	assert.False(t, inRecovery)
	assert.GreaterOrEqual(t, waited, 140*time.Millisecond, "the replica was given the wait timeout")
	after := stats(t, fallback)
	assert.Equal(t, before.WaitTimeouts+1, after.WaitTimeouts)
	assert.Equal(t, before.Fallbacks+1, after.Fallbacks)
	assert.Equal(t, before.Ejections+1, after.Ejections, "a replica that let a wait time out leaves the rotation")

	// The lagging replica is out of rotation: the next read goes straight
	// to the primary, without waiting again.
	require.NoError(t, fallback.QueryRow("SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = 'paused'").Scan(&n, &inRecovery))
	assert.False(t, inRecovery)
	assert.Equal(t, after.WaitTimeouts, stats(t, fallback).WaitTimeouts)

	// The strict handles have not seen the write: give them the token.
	tok := pgwait.NewToken(mustHighWater(t, fallback))
	err = strict.QueryRowContext(pgwait.WithToken(ctx, tok), "SELECT count(*) FROM "+tbl).Scan(&n)
	require.ErrorIs(t, err, pgwait.ErrWaitTimeout)
	var wte *pgwait.WaitTimeoutError
	require.ErrorAs(t, err, &wte)
	assert.Equal(t, tok.LSN(), wte.LSN)

	// A context deadline shorter than the wait timeout cuts the wait, and the
	// connection survives it. (The wait keeps a fifth of the time left for
	// the answer: 80 ms here, enough on a loaded CI machine, where 20 ms of
	// a 100 ms deadline was not always.)
	shortBefore := stats(t, strictShort)
	short, cancel := context.WithTimeout(pgwait.WithToken(ctx, tok), 400*time.Millisecond)
	err = strictShort.QueryRowContext(short, "SELECT count(*) FROM "+tbl).Scan(&n)
	cancel()
	require.ErrorIs(t, err, pgwait.ErrWaitTimeout)
	require.NoError(t, strictShort.QueryRowContext(pgwait.OnPrimary(ctx), "SELECT 1").Scan(&n))
	assert.Equal(t, shortBefore.Ejections, stats(t, strictShort).Ejections,
		"a wait cut short by the context does not eject the replica")

	require.NoError(t, c.ResumeReplay(ctx, 0))
	// A replica out for lagging serves reads that need no wait at once, and
	// the token's read once a probe finds it caught up.
	require.Eventually(t, func() bool {
		err := strict.QueryRowContext(pgwait.WithToken(ctx, tok), "SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = 'paused'").Scan(&n, &inRecovery)
		return err == nil && inRecovery
	}, 10*time.Second, 20*time.Millisecond, "after resume the replica serves the read")
	assert.Equal(t, 1, n)

	// A read-only transaction with a paused replica follows the same policy.
	eventuallyOnReplica(t, ctx, fallback)
	require.NoError(t, c.PauseReplay(ctx, 0))
	_, err = fallback.Exec("INSERT INTO " + tbl + " (v) VALUES ('paused2')")
	require.NoError(t, err)
	tx, err := fallback.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow("SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = 'paused2'").Scan(&n, &inRecovery))
	assert.Equal(t, 1, n)
	assert.False(t, inRecovery, "the read-only transaction moved to the primary")
	require.NoError(t, tx.Commit())
	_, err = strict.BeginTx(pgwait.WithToken(ctx, pgwait.NewToken(mustHighWater(t, fallback))), &sql.TxOptions{ReadOnly: true})
	require.ErrorIs(t, err, pgwait.ErrWaitTimeout)
	require.NoError(t, c.ResumeReplay(ctx, 0))
}

func mustHighWater(t testing.TB, db *sql.DB) pgwait.LSN {
	t.Helper()
	conn, err := db.Conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	var l pgwait.LSN
	require.NoError(t, conn.Raw(func(dc any) error {
		p, err := dc.(*pgwaitdriver.Conn).Primary(context.Background())
		if err != nil {
			return err
		}
		var text string
		if err := p.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&text); err != nil {
			return err
		}
		l, err = pgwait.ParseLSN(text)
		return err
	}))
	return l
}

func TestPromotedReplica(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_wait_timeout=2s")
	tbl := table(t, db)
	assert.True(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery()"))

	// Promote the replica behind the cluster's back: the old primary stays
	// up, as when a replica is promoted by mistake or split off.
	replica := connect(t, c.ReplicaDSN(0))
	_, err := replica.Exec(ctx, "SELECT pg_promote(true)")
	require.NoError(t, err)
	_, err = db.Exec("INSERT INTO " + tbl + " (v) VALUES ('after-promotion')")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+tbl+" WHERE v = 'after-promotion'").Scan(&n))
	assert.Equal(t, 1, n, "the promoted replica answers 'not in recovery' and the primary serves the read")
	assert.GreaterOrEqual(t, stats(t, db).Promotions, uint64(1))
}

// readYourWrites inserts rows prefix0 ... prefix<pairs-1>, reading each back
// at once; every read must see its row.
func readYourWrites(t testing.TB, db *sql.DB, tbl, prefix string, pairs int) {
	t.Helper()
	for i := range pairs {
		v := fmt.Sprint(prefix, i)
		_, err := db.Exec("INSERT INTO "+tbl+" (v) VALUES ($1)", v)
		require.NoError(t, err)
		var n int
		require.NoError(t, db.QueryRow("SELECT count(*) FROM "+tbl+" WHERE v = $1", v).Scan(&n), "read of pair %d failed", i)
		require.Equal(t, 1, n, "stale read at pair %d", i)
	}
}

func TestPollingWait(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_wait_method=poll", "pgwait_wait_timeout=200ms")
	tbl := table(t, db)
	readYourWrites(t, db, tbl, "poll", 200)
	require.NoError(t, c.PauseReplay(ctx, 0))
	_, err := db.Exec("INSERT INTO " + tbl + " (v) VALUES ('poll-paused')")
	require.NoError(t, err)
	var n int
	var inRecovery bool
	require.NoError(t, db.QueryRow("SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = 'poll-paused'").Scan(&n, &inRecovery))
	assert.Equal(t, 1, n)
	assert.False(t, inRecovery, "polling timed out and fell back to the primary")
	require.NoError(t, c.ResumeReplay(ctx, 0))
	st := stats(t, db)
	assert.GreaterOrEqual(t, st.WaitTimeouts, uint64(1))
	assert.Greater(t, st.ReplicaReads, uint64(150))
}

func TestOlderServerPolls(t *testing.T) {
	bin, major, err := pgtest.FindOlderBinaries()
	if err != nil {
		t.Skip("no PostgreSQL older than 19 installed:", err)
	}
	t.Logf("PostgreSQL %d from %s", major, bin)
	c := pgtest.New(t, pgtest.Options{BinDir: bin})
	ctx := ctxT(t)
	db := open(t, c) // wait method auto: no WAIT FOR LSN before 19
	tbl := table(t, db)
	readYourWrites(t, db, tbl, "old", 100)
	assert.True(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery()"))
	assert.Greater(t, stats(t, db).ReplicaReads, uint64(50))
}

func TestSynchronousCommitOff(t *testing.T) {
	// An asynchronous commit reaches the replica only once the WAL writer
	// flushes it, every wal_writer_delay (200ms by default): shortened here
	// to keep the test quick; correctness does not depend on it.
	c := pgtest.New(t, pgtest.Options{Settings: map[string]string{"synchronous_commit": "off", "wal_writer_delay": "10ms"}})
	db := open(t, c)
	tbl := table(t, db)
	readYourWrites(t, db, tbl, "async", 300)
	st := stats(t, db)
	assert.Greater(t, st.ReplicaReads, uint64(290))
}

func TestNoReplicasMeansPrimary(t *testing.T) {
	ctx := ctxT(t)
	db, err := sql.Open("pgwait", shared(t).PrimaryDSN())
	require.NoError(t, err)
	defer db.Close()
	assert.False(t, onReplica(t, ctx, db, "SELECT pg_is_in_recovery()"))

	// Without replicas nothing waits, so writes skip the LSN capture...
	tbl := table(t, db)
	_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('a')")
	require.NoError(t, err)
	assert.Zero(t, stats(t, db).Writes)
	// ... unless a token is to be advanced, for readers elsewhere.
	tok := new(pgwait.Token)
	_, err = db.ExecContext(pgwait.WithToken(ctx, tok), "INSERT INTO "+tbl+" (v) VALUES ('b')")
	require.NoError(t, err)
	assert.NotEmpty(t, tok.String())
	assert.EqualValues(t, 1, stats(t, db).Writes)
}

func TestBadDSN(t *testing.T) {
	db, err := sql.Open("pgwait", "postgres://u:topsecret@127.0.0.1:1/x?pgwait_scope=nope")
	if err == nil {
		err = db.Ping()
		db.Close()
	}
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "topsecret")
	assert.Contains(t, err.Error(), "pgwait_scope")
}

func TestScripts(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	name := fmt.Sprintf("script_%d", tableSeq.Add(1))
	_, err := db.ExecContext(ctx, "CREATE TABLE "+name+" (a int); INSERT INTO "+name+" VALUES (1); INSERT INTO "+name+" VALUES (2)")
	require.NoError(t, err, "a script of several statements without arguments runs, as with pgx")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+name).Scan(&n))
	assert.Equal(t, 2, n, "and its LSN is captured: the replica read sees it")
	_, err = db.ExecContext(ctx, "SELECT 1; SELECT 2")
	require.NoError(t, err, "a script of reads")

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "INSERT INTO "+name+" VALUES (3); INSERT INTO "+name+" VALUES (4)")
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+name).Scan(&n))
	assert.Equal(t, 4, n)

	_, err = db.ExecContext(ctx, "INSERT INTO "+name+" VALUES ($1); SELECT 1", 5)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "with arguments the server refuses a script, as with pgx")
	assert.Equal(t, "42601", pgErr.Code)
}

func TestWriteShapes(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()

	// Data statements are captured inside BEGIN ... COMMIT: a failing one
	// leaves no transaction open and nothing written.
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('dup')")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('dup')")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23505", pgErr.Code)
	var n int
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'dup'").Scan(&n))
	assert.Equal(t, 1, n, "the connection is usable and saw its write")

	// A deferred constraint fails at COMMIT: that is the statement's error.
	_, err = conn.ExecContext(ctx, "CREATE TABLE "+tbl+"_d (id int PRIMARY KEY, ref int REFERENCES "+tbl+"_d (id) DEFERRABLE INITIALLY DEFERRED)")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+"_d VALUES (1, 99)")
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "23503", pgErr.Code)
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+"_d VALUES (1, 1)")
	require.NoError(t, err, "nothing of the failed insert remained")

	// Statements that cannot run inside a transaction block still work.
	_, err = conn.ExecContext(ctx, "CREATE INDEX CONCURRENTLY "+tbl+"_n ON "+tbl+" (n)")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "VACUUM "+tbl)
	require.NoError(t, err)

	// DISCARD ALL drops every prepared statement; pgwait prepares again.
	_, err = conn.ExecContext(ctx, "DISCARD ALL")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('after-discard')")
	require.NoError(t, err)
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'after-discard'").Scan(&n))
	assert.Equal(t, 1, n)

	// DEALLOCATE ALL behind pgwait's back (through the raw connection).
	require.NoError(t, conn.Raw(func(dc any) error {
		p, err := dc.(*pgwaitdriver.Conn).Primary(ctx)
		if err != nil {
			return err
		}
		_, err = p.PgConn().Exec(ctx, "DEALLOCATE ALL").ReadAll()
		return err
	}))
	_, err = conn.ExecContext(ctx, "CREATE TABLE "+tbl+"_x (a int)")
	require.NoError(t, err, "the LSN is read unprepared when its statement is gone")
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+"_x").Scan(&n))
}

func TestPgxNamedArgs(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	tbl := table(t, db)
	_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v, n) VALUES (@v, @n)", pgx.NamedArgs{"v": "named", "n": 7})
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT n FROM "+tbl+" WHERE v = @v", pgx.NamedArgs{"v": "named"}).Scan(&n))
	assert.Equal(t, 7, n, "pgx.NamedArgs rewrites the query, as with pgx stdlib")
	_, err = db.ExecContext(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
	assert.NoError(t, err, "a QueryExecMode argument picks the statement's mode")
	require.NoError(t, db.QueryRowContext(ctx, "SELECT n FROM "+tbl+" WHERE v = @v", pgx.QueryExecModeExec, pgx.NamedArgs{"v": "named"}).Scan(&n))
	assert.Equal(t, 7, n)
	_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", pgx.QueryExecModeSimpleProtocol, "simple")
	assert.ErrorContains(t, err, "default_query_exec_mode=simple_protocol",
		"pgwait interpolates with pgx's sanitizer only on a connection whose default mode is simple_protocol")
	err = db.QueryRowContext(ctx, "SELECT n FROM "+tbl+" WHERE v = $1", pgx.QueryExecModeSimpleProtocol, "named").Scan(&n)
	assert.ErrorContains(t, err, "default_query_exec_mode=simple_protocol", "refused for reads too, waited for or not")
}
