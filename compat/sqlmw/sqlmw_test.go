package sqlmwcompat_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ngrok/sqlmw"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/compat/internal/compattest"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
)

// counter is a sqlmw interceptor that counts the calls it sees and keeps the
// pgwait connector database/sql connects through.
type counter struct {
	sqlmw.NullInterceptor

	connects, execs, queries, begins, commits, stmtExecs, stmtQueries atomic.Int64

	mu        sync.Mutex
	connector *pgwaitdriver.Connector
}

func (c *counter) ConnectorConnect(ctx context.Context, connector sqldriver.Connector) (sqldriver.Conn, error) {
	c.connects.Add(1)
	if pc, ok := connector.(*pgwaitdriver.Connector); ok {
		c.mu.Lock()
		c.connector = pc
		c.mu.Unlock()
	}
	return c.NullInterceptor.ConnectorConnect(ctx, connector)
}

func (c *counter) ConnExecContext(ctx context.Context, conn sqldriver.ExecerContext, query string, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	c.execs.Add(1)
	return c.NullInterceptor.ConnExecContext(ctx, conn, query, args)
}

func (c *counter) ConnQueryContext(ctx context.Context, conn sqldriver.QueryerContext, query string, args []sqldriver.NamedValue) (context.Context, sqldriver.Rows, error) {
	c.queries.Add(1)
	return c.NullInterceptor.ConnQueryContext(ctx, conn, query, args)
}

func (c *counter) ConnBeginTx(ctx context.Context, conn sqldriver.ConnBeginTx, opts sqldriver.TxOptions) (context.Context, sqldriver.Tx, error) {
	c.begins.Add(1)
	return c.NullInterceptor.ConnBeginTx(ctx, conn, opts)
}

func (c *counter) TxCommit(ctx context.Context, tx sqldriver.Tx) error {
	c.commits.Add(1)
	return c.NullInterceptor.TxCommit(ctx, tx)
}

func (c *counter) StmtExecContext(ctx context.Context, stmt sqldriver.StmtExecContext, query string, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	c.stmtExecs.Add(1)
	return c.NullInterceptor.StmtExecContext(ctx, stmt, query, args)
}

func (c *counter) StmtQueryContext(ctx context.Context, stmt sqldriver.StmtQueryContext, query string, args []sqldriver.NamedValue) (context.Context, sqldriver.Rows, error) {
	c.stmtQueries.Add(1)
	return c.NullInterceptor.StmtQueryContext(ctx, stmt, query, args)
}

// stats returns the pgwait statistics of the connector the interceptor saw.
func (c *counter) stats(t *testing.T) pgwait.Stats {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotNil(t, c.connector, "ConnectorConnect never saw a *driver.Connector")
	return c.connector.Stats()
}

// interceptor is the one registered under "pgwait-mw": database/sql cannot
// register a name twice, so the tests share it and compare counts before
// and after.
var interceptor = &counter{}

func TestMain(m *testing.M) {
	sql.Register("pgwait-mw", sqlmw.Driver(pgwaitdriver.Driver{}, interceptor))
	os.Exit(compattest.Main(m))
}

func open(t *testing.T) (*sql.DB, string) {
	t.Helper()
	db := compattest.Open(t, "pgwait-mw")
	table := compattest.Name("mw")
	_, err := db.ExecContext(compattest.Ctx(t), "CREATE TABLE "+table+" (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL)")
	require.NoError(t, err)
	return db, table
}

func TestReplicaLags(t *testing.T) { compattest.RequireReplicaLags(t) }

// Insert then select at once through the wrapped driver, compattest.Loops
// times: never stale, the reads on the replica (asked of the server, and
// counted by pgwait), every call seen by the interceptor.
func TestReadYourWrites(t *testing.T) {
	db, table := open(t)
	ctx := compattest.Ctx(t)
	before := interceptor.stats(t)
	execs, queries := interceptor.execs.Load(), interceptor.queries.Load()
	stale := 0
	for i := range compattest.Loops {
		name := fmt.Sprint("mw-", i)
		_, err := db.ExecContext(ctx, "INSERT INTO "+table+" (name) VALUES ($1)", name)
		require.NoError(t, err)
		var inRecovery bool
		err = db.QueryRowContext(ctx, "SELECT pg_is_in_recovery() FROM "+table+" WHERE name = $1", name).Scan(&inRecovery)
		if errors.Is(err, sql.ErrNoRows) {
			stale++
			continue
		}
		require.NoError(t, err)
		require.True(t, inRecovery, "the read ran on the primary")
	}
	require.Zero(t, stale, "stale reads")
	compattest.RequireReplicaRYW(t, compattest.Sub(interceptor.stats(t), before), compattest.Loops)
	require.GreaterOrEqual(t, interceptor.execs.Load()-execs, int64(compattest.Loops), "execs the interceptor saw")
	require.GreaterOrEqual(t, interceptor.queries.Load()-queries, int64(compattest.Loops), "queries the interceptor saw")
	require.Positive(t, interceptor.connects.Load())
}

// Transactions, prepared statements, routing overrides in the context and
// PostgreSQL errors all go through the wrapper unchanged.
func TestTxStmtRoutingErrors(t *testing.T) {
	db, table := open(t)
	ctx := compattest.Ctx(t)
	begins, commits := interceptor.begins.Load(), interceptor.commits.Load()
	stmtExecs, stmtQueries := interceptor.stmtExecs.Load(), interceptor.stmtQueries.Load()

	ins, err := db.PrepareContext(ctx, "INSERT INTO "+table+" (name) VALUES ($1)")
	require.NoError(t, err)
	defer ins.Close()
	sel, err := db.PrepareContext(ctx, "SELECT count(*), bool_and(pg_is_in_recovery()) FROM "+table+" WHERE name = $1")
	require.NoError(t, err)
	defer sel.Close()

	const n = 20
	for i := range n {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" (name) VALUES ($1)", fmt.Sprint("tx-", i))
		require.NoError(t, err)
		require.NoError(t, tx.Commit())

		_, err = ins.ExecContext(ctx, fmt.Sprint("stmt-", i))
		require.NoError(t, err)

		for _, name := range []string{fmt.Sprint("tx-", i), fmt.Sprint("stmt-", i)} {
			var count int
			var inRecovery bool
			require.NoError(t, sel.QueryRowContext(ctx, name).Scan(&count, &inRecovery))
			require.Equal(t, 1, count, "%s not visible at once", name)
			require.True(t, inRecovery, "a prepared read ran on the primary")
		}

		ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		var count int
		var inRecovery bool
		require.NoError(t, ro.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+table+" WHERE name = $1", fmt.Sprint("stmt-", i)).Scan(&count, &inRecovery))
		require.Equal(t, 1, count, "a read-only transaction misses the write before it")
		require.True(t, inRecovery, "a read-only transaction ran on the primary")
		require.NoError(t, ro.Commit())
	}
	require.GreaterOrEqual(t, interceptor.begins.Load()-begins, int64(2*n))
	require.GreaterOrEqual(t, interceptor.commits.Load()-commits, int64(2*n))
	require.GreaterOrEqual(t, interceptor.stmtExecs.Load()-stmtExecs, int64(n))
	require.GreaterOrEqual(t, interceptor.stmtQueries.Load()-stmtQueries, int64(2*n))

	// pgwait.OnPrimary in the context reaches pgwait through the wrapper.
	var inRecovery bool
	require.NoError(t, db.QueryRowContext(pgwait.OnPrimary(ctx), "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	require.False(t, inRecovery, "pgwait.OnPrimary was lost in the wrapper")
	require.NoError(t, db.QueryRowContext(ctx, "/* pgwait:primary */ SELECT pg_is_in_recovery()").Scan(&inRecovery))
	require.False(t, inRecovery, "the pgwait:primary hint was lost in the wrapper")

	// A unique violation comes back as the *pgconn.PgError.
	_, err = db.ExecContext(ctx, "INSERT INTO "+table+" (name) VALUES ('tx-0')")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.Code)
}

// What sqlmw hides: its connections wrap pgwait's in an unexported type with
// no way back, so sql.Conn.Raw hands over sqlmw's connection, not
// *driver.Conn, and driver.StatsOf fails. Keep the *driver.Connector from
// the interceptor's ConnectorConnect (as counter does) for Stats, and open a
// plain pgwait *sql.DB for Raw access to the server connections.
func TestRawIsHidden(t *testing.T) {
	db, _ := open(t)
	ctx := compattest.Ctx(t)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Raw(func(dc any) error {
		_, ok := dc.(*pgwaitdriver.Conn)
		require.False(t, ok, "sqlmw now passes *driver.Conn to Raw: update this test and compat/README.md")
		_, ok = dc.(interface{ Raw() sqldriver.Conn })
		require.False(t, ok, "sqlmw now has a way back to the driver's conn: update this test and compat/README.md")
		t.Logf("sql.Conn.Raw through sqlmw hands over a %T", dc)
		return nil
	}))
	_, err = pgwaitdriver.StatsOf(ctx, db)
	require.Error(t, err, "driver.StatsOf now works through sqlmw: update this test and compat/README.md")
	t.Logf("driver.StatsOf through sqlmw: %v", err)
}
