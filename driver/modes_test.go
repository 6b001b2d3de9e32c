package driver_test

import (
	"context"
	"database/sql"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// execModes are pgx's query exec modes, as default_query_exec_mode spells
// them.
var execModes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// namedStatements counts the named prepared statements of conn's sessions
// on the primary and on its replica, read with the simple protocol (which
// prepares nothing).
func namedStatements(t *testing.T, ctx context.Context, conn *sql.Conn) (primary, replica int) {
	t.Helper()
	const q = "SELECT count(*) FROM pg_prepared_statements"
	require.NoError(t, conn.Raw(func(dc any) error {
		c := dc.(*pgwaitdriver.Conn)
		p, err := c.Primary(ctx)
		if err != nil {
			return err
		}
		if err := p.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&primary); err != nil {
			return err
		}
		r, err := c.Replica(ctx)
		if err != nil {
			return err
		}
		return r.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&replica)
	}))
	return primary, replica
}

// TestExecModes: in each exec mode, writes of every capture shape read
// their LSN (Stats.Writes), the reads after them wait on the replica
// (Stats.Waits) and see them there (Stats.ReplicaReads), and outside
// cache_statement no named prepared statement is left on either server.
func TestExecModes(t *testing.T) {
	c := shared(t)
	for _, mode := range execModes {
		t.Run(mode, func(t *testing.T) {
			ctx := ctxT(t)
			db := open(t, c, "default_query_exec_mode="+mode, "pgwait_wait_timeout=10s", "pgwait_on_timeout=error")
			tbl := table(t, db)
			conn, err := db.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			before := stats(t, db)
			read := func(v string) (n int, onReplica bool) {
				t.Helper()
				require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = $1", v).Scan(&n, &onReplica))
				return n, onReplica
			}
			check := func(what, v string) {
				t.Helper()
				n, onReplica := read(v)
				assert.Equal(t, 1, n, "%s: the read sees the write", what)
				assert.True(t, onReplica, "%s: the replica serves the read", what)
			}

			// One data statement: BEGIN, statement, COMMIT, LSN.
			_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v, n) VALUES ($1, $2)", "it's; -- a value", 1)
			require.NoError(t, err)
			check("Exec", "it's; -- a value")
			var id int64
			require.NoError(t, conn.QueryRowContext(ctx, "INSERT INTO "+tbl+" (v, n) VALUES ($1, $2) RETURNING id", "returning", 2).Scan(&id))
			check("Query RETURNING", "returning")
			// A transaction's COMMIT.
			tx, err := conn.BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, "INSERT INTO "+tbl+" (v, n) VALUES ($1, $2)", "tx", 3)
			require.NoError(t, err)
			require.NoError(t, tx.Commit())
			check("COMMIT", "tx")
			// Anything else: the statement, then the LSN.
			_, err = conn.ExecContext(ctx, "CREATE INDEX "+tbl+"_n ON "+tbl+" (n)")
			require.NoError(t, err)
			var idx int
			require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_indexes WHERE indexname = lower($1)", tbl+"_n").Scan(&idx))
			assert.Equal(t, 1, idx, "the read sees the DDL")
			// A read-only transaction waits in BEGIN's round trip.
			_, err = conn.ExecContext(ctx, "UPDATE "+tbl+" SET v = $1 WHERE id = $2", "updated", id)
			require.NoError(t, err)
			ro, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			require.NoError(t, err)
			var n int
			var onReplica bool
			require.NoError(t, ro.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = $1", "updated").Scan(&n, &onReplica))
			require.NoError(t, ro.Commit())
			assert.Equal(t, 1, n)
			assert.True(t, onReplica)

			after := stats(t, db)
			assert.GreaterOrEqual(t, after.Writes-before.Writes, uint64(5), "each write's LSN was read")
			assert.GreaterOrEqual(t, after.Waits-before.Waits, uint64(4), "the reads waited on the replica")
			assert.Zero(t, after.Fallbacks-before.Fallbacks)
			assert.Zero(t, after.WaitTimeouts-before.WaitTimeouts)

			primary, replica := namedStatements(t, ctx, conn)
			if mode == "cache_statement" {
				assert.NotZero(t, primary, "cache_statement prepares its statements")
				return
			}
			assert.Zero(t, primary, "no named statement is left on the primary in %s", mode)
			assert.Zero(t, replica, "no named statement is left on the replica in %s", mode)

			// A Stmt is a named prepared statement in every mode, as with
			// pgx stdlib.
			st, err := conn.PrepareContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE n > $1")
			require.NoError(t, err)
			require.NoError(t, st.QueryRowContext(ctx, 0).Scan(&n))
			assert.Equal(t, 3, n)
			require.NoError(t, st.Close())
			// Closed, it is deallocated on the primary at once, and on the
			// replica before its next read.
			_, onReplica = read("tx")
			assert.True(t, onReplica)
			primary, replica = namedStatements(t, ctx, conn)
			assert.Zero(t, primary, "a closed Stmt is deallocated on the primary")
			assert.Zero(t, replica, "a closed Stmt is deallocated on the replica")
		})
	}
}

// TestExecModesReadYourWritesPaused: in each exec mode, with the replica's
// replay paused, each kind of write (one data statement through Exec and
// through Query, a transaction's COMMIT, DDL) is followed by a read that
// waits on the replica until replay resumes and then sees the write there:
// the write's LSN was read, after its commit. Each kind has a pause of its
// own, so that one kind's missing position is not covered by another's.
func TestExecModesReadYourWritesPaused(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	for _, mode := range execModes {
		t.Run(mode, func(t *testing.T) {
			ctx := ctxT(t)
			db := open(t, c, "default_query_exec_mode="+mode, "pgwait_wait_timeout=20s", "pgwait_on_timeout=error", "pgwait_health_interval=50ms")
			tbl := table(t, db)
			_, err := db.ExecContext(ctx, "ALTER TABLE "+tbl+" ADD COLUMN late int DEFAULT 7")
			require.NoError(t, err)
			seen := "SELECT count(*), bool_and(pg_is_in_recovery()) FROM " + tbl + " WHERE v = $1"
			writes := []struct {
				name  string
				write func()
				read  string // a read that sees the write: its count is 1
				arg   any
			}{
				{"Exec", func() {
					_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", "exec")
					require.NoError(t, err)
				}, seen, "exec"},
				{"Query RETURNING", func() {
					var id int64
					require.NoError(t, db.QueryRowContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1) RETURNING id", "returning").Scan(&id))
				}, seen, "returning"},
				{"COMMIT", func() {
					tx, err := db.BeginTx(ctx, nil)
					require.NoError(t, err)
					_, err = tx.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", "tx")
					require.NoError(t, err)
					require.NoError(t, tx.Commit())
				}, seen, "tx"},
				{"DDL", func() {
					_, err := db.ExecContext(ctx, "ALTER TABLE "+tbl+" ALTER COLUMN late SET DEFAULT 8")
					require.NoError(t, err)
					_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('ddl')")
					require.NoError(t, err)
				}, "SELECT count(*), bool_and(pg_is_in_recovery()) FROM " + tbl + " WHERE late = $1", 8},
			}
			if mode == "simple_protocol" {
				// Several statements with arguments: one implicit
				// transaction, its position read in a second round trip.
				writes = append(writes, struct {
					name  string
					write func()
					read  string
					arg   any
				}{"script with arguments", func() {
					res, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1); UPDATE "+tbl+" SET n = 5 WHERE v = $2", "script", "script")
					require.NoError(t, err)
					affected, err := res.RowsAffected()
					require.NoError(t, err)
					assert.Equal(t, int64(1), affected)
				}, "SELECT count(*), bool_and(pg_is_in_recovery()) FROM " + tbl + " WHERE n = $1", 5})
			}
			for _, w := range writes {
				eventuallyOnReplica(t, ctx, db)
				before := stats(t, db)
				require.NoError(t, c.PauseReplay(ctx, 0))
				w.write()
				const pause = 200 * time.Millisecond
				start := time.Now()
				resumed := make(chan error, 1)
				go func() {
					time.Sleep(pause)
					resumed <- c.ResumeReplay(context.Background(), 0)
				}()
				var n int
				var onReplica bool
				err := db.QueryRowContext(ctx, w.read, w.arg).Scan(&n, &onReplica)
				waited := time.Since(start)
				require.NoError(t, <-resumed)
				require.NoError(t, err, w.name)
				assert.Equal(t, 1, n, "%s: the read sees the write", w.name)
				assert.True(t, onReplica, "%s: the replica served the read, after waiting", w.name)
				assert.GreaterOrEqual(t, waited, pause-50*time.Millisecond, "%s: the read waited for replay to resume", w.name)
				after := stats(t, db)
				assert.Equal(t, before.Fallbacks, after.Fallbacks, w.name)
				assert.Greater(t, after.Waits, before.Waits, w.name)
			}
		})
	}
}

// TestExecModeSimpleProtocolErrors: in simple_protocol the caller's errors
// come back as pgx gives them, positions included, though pgwait sends its
// own statements in the same query.
func TestExecModeSimpleProtocolErrors(t *testing.T) {
	c := shared(t)
	ctx := ctxT(t)
	db := open(t, c, "default_query_exec_mode=simple_protocol", "pgwait_wait_timeout=10s", "pgwait_on_timeout=error")
	std, err := sql.Open("pgx", c.PrimaryDSN()+" default_query_exec_mode=simple_protocol")
	require.NoError(t, err)
	defer std.Close()
	tbl := table(t, db)
	_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", "x")
	require.NoError(t, err)
	for _, q := range []string{
		"SELECT v FROM " + tbl + " WHERE v = $1 AND nosuch = 1",
		"INSERT INTO " + tbl + " (v, nosuch) VALUES ($1, 1)",
	} {
		var v string
		wantErr := std.QueryRowContext(ctx, q, "x").Scan(&v)
		gotErr := db.QueryRowContext(ctx, q, "x").Scan(&v)
		var want, got *pgconn.PgError
		require.ErrorAs(t, wantErr, &want)
		require.ErrorAs(t, gotErr, &got)
		assert.Equal(t, want.Code, got.Code)
		assert.Equal(t, want.Message, got.Message)
		assert.Equal(t, want.Position, got.Position, "the error's position counts from the caller's statement")
	}
	_, err = db.ExecContext(pgwait.OnPrimary(ctx), "SELECT $1::int", "x")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "22P02", pgErr.Code)
}

// countingConn counts the writes on a server connection: pgconn flushes
// what it queued once per round trip it starts.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func countingDial(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c}, nil
	}
}

// TestExecModesRoundTrips counts the round trips of a write with its LSN
// capture and of the read after it, which waits on the replica, in each
// exec mode (statements already known to the connection): one each, two
// in describe_exec, which describes each statement first, as pgx does.
func TestExecModesRoundTrips(t *testing.T) {
	c := shared(t)
	want := map[string]int64{"cache_statement": 1, "cache_describe": 1, "describe_exec": 2, "exec": 1, "simple_protocol": 1}
	for _, mode := range execModes {
		t.Run(mode, func(t *testing.T) {
			ctx := ctxT(t)
			cfg, err := pgwait.ParseConfig(dsnFor(t, c, "default_query_exec_mode="+mode, "pgwait_wait_timeout=10s", "pgwait_on_timeout=error"))
			require.NoError(t, err)
			cfg.Primary.DialFunc = countingDial(cfg.Primary.DialFunc)
			for _, r := range cfg.Replicas {
				r.DialFunc = countingDial(r.DialFunc)
			}
			db := openConfig(t, cfg)
			tbl := table(t, db)
			conn, err := db.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			writes := func() (primary, replica int64) {
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
					primary = p.PgConn().Conn().(*countingConn).writes.Load()
					replica = r.PgConn().Conn().(*countingConn).writes.Load()
					return nil
				}))
				return primary, replica
			}
			insert := "INSERT INTO " + tbl + " (v) VALUES ($1)"
			count := "SELECT count(*) FROM " + tbl + " WHERE v = $1"
			var n int
			for i, v := range []string{"warm", "measured"} {
				p0, _ := writes()
				_, err = conn.ExecContext(ctx, insert, v)
				require.NoError(t, err)
				p1, r1 := writes()
				waits := stats(t, db).Waits
				require.NoError(t, conn.QueryRowContext(ctx, count, v).Scan(&n))
				_, r2 := writes()
				assert.Equal(t, 1, n)
				assert.Equal(t, waits+1, stats(t, db).Waits, "the read waited")
				if i == 1 {
					assert.Equal(t, want[mode], p1-p0, "round trips of the write and its LSN capture")
					assert.Equal(t, want[mode], r2-r1, "round trips of the read and its wait")
				}
			}
		})
	}
}
