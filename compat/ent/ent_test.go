package entcompat_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/compattest"
	_ "github.com/pgwait/pgwait/driver"
)

func TestMain(m *testing.M) { os.Exit(compattest.Main(m)) }

var pg = entsql.Dialect(dialect.Postgres)

// open returns ent's SQL driver over a pgwait *sql.DB, and a fresh table.
func open(t *testing.T) (*entsql.Driver, string) {
	t.Helper()
	drv := entsql.OpenDB(dialect.Postgres, compattest.Open(t, "pgwait"))
	table := compattest.Name("users")
	require.NoError(t, drv.Exec(compattest.Ctx(t),
		"CREATE TABLE "+table+" (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL, n int NOT NULL DEFAULT 0)", []any{}, nil))
	return drv, table
}

// insert inserts a row with ent's builder (INSERT ... RETURNING, through
// Query) and returns its id.
func insert(ctx context.Context, t *testing.T, ex interface {
	Query(context.Context, string, any, any) error
}, table, name string, n int) int64 {
	t.Helper()
	q, args := pg.Insert(table).Columns("name", "n").Values(name, n).Returning("id").Query()
	var rows entsql.Rows
	require.NoError(t, ex.Query(ctx, q, args, &rows))
	defer rows.Close()
	id, err := entsql.ScanInt64(rows)
	require.NoError(t, err)
	return id
}

type user struct {
	Name string
	N    int
}

// get reads a row with ent's builder; found is false when it is missing.
func get(ctx context.Context, t *testing.T, ex interface {
	Query(context.Context, string, any, any) error
}, table string, id int64) (u user, found bool) {
	t.Helper()
	q, args := pg.Select("name", "n").From(pg.Table(table)).Where(entsql.EQ("id", id)).Query()
	var rows entsql.Rows
	require.NoError(t, ex.Query(ctx, q, args, &rows))
	defer rows.Close()
	if !rows.Next() {
		require.NoError(t, rows.Err())
		return u, false
	}
	require.NoError(t, rows.Scan(&u.Name, &u.N))
	return u, true
}

func TestReplicaLags(t *testing.T) { compattest.RequireReplicaLags(t) }

// Builder INSERT ... RETURNING then SELECT at once; builder UPDATE through
// Exec then SELECT at once; compattest.Loops times.
func TestBuilderWriteThenRead(t *testing.T) {
	drv, table := open(t)
	ctx := compattest.Ctx(t)
	before := compattest.Stats(t, drv.DB())
	stale := 0
	for i := range compattest.Loops {
		name := fmt.Sprint("u-", i)
		id := insert(ctx, t, drv, table, name, i)
		if u, ok := get(ctx, t, drv, table, id); !ok || u.Name != name {
			stale++
			continue
		}

		if i%4 == 0 {
			q, args := pg.Update(table).Add("n", 1000).Where(entsql.EQ("id", id)).Query()
			var res sql.Result
			require.NoError(t, drv.Exec(ctx, q, args, &res))
			affected, err := res.RowsAffected()
			require.NoError(t, err)
			require.EqualValues(t, 1, affected)
			if u, _ := get(ctx, t, drv, table, id); u.N != i+1000 {
				stale++
			}
		}
	}
	require.Zero(t, stale, "stale reads")

	// A count over everything just written, with the builder's aggregate.
	q, args := pg.Select(entsql.Count("*")).From(pg.Table(table)).Query()
	var rows entsql.Rows
	require.NoError(t, drv.Query(ctx, q, args, &rows))
	n, err := entsql.ScanInt(rows)
	require.NoError(t, err)
	require.NoError(t, rows.Close())
	require.Equal(t, compattest.Loops, n)

	compattest.RequireReplicaRYW(t, compattest.Sub(compattest.Stats(t, drv.DB()), before), compattest.Loops)
}

// drv.Tx runs on the primary and commits; the commit is read from the
// replica at once. A rolled-back transaction leaves nothing. A read-only
// drv.BeginTx runs on the replica and sees the writes before it.
func TestTx(t *testing.T) {
	drv, table := open(t)
	ctx := compattest.Ctx(t)
	for i := range 20 {
		tx, err := drv.Tx(ctx)
		require.NoError(t, err)
		id := insert(ctx, t, tx, table, fmt.Sprint("tx-", i), i)
		u, ok := get(ctx, t, tx, table, id)
		require.True(t, ok, "the transaction does not see its own row")
		require.Equal(t, i, u.N)
		q, args := pg.Update(table).Set("n", i+1).Where(entsql.EQ("id", id)).Query()
		require.NoError(t, tx.Exec(ctx, q, args, nil))
		require.NoError(t, tx.Commit())

		before := compattest.Stats(t, drv.DB())
		u, ok = get(ctx, t, drv, table, id)
		require.True(t, ok, "round %d: committed row not visible", i)
		require.Equal(t, i+1, u.N)
		d := compattest.Sub(compattest.Stats(t, drv.DB()), before)
		require.EqualValues(t, 1, d.ReplicaReads)

		ro, err := drv.BeginTx(ctx, &entsql.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		var rows entsql.Rows
		require.NoError(t, ro.Query(ctx, "SELECT pg_is_in_recovery()", []any{}, &rows))
		var inRecovery bool
		require.True(t, rows.Next())
		require.NoError(t, rows.Scan(&inRecovery))
		require.NoError(t, rows.Close())
		require.True(t, inRecovery, "a read-only transaction ran on the primary")
		u, ok = get(ctx, t, ro, table, id)
		require.True(t, ok, "round %d: read-only transaction misses the commit before it", i)
		require.Equal(t, i+1, u.N)
		require.NoError(t, ro.Commit())
	}

	tx, err := drv.Tx(ctx)
	require.NoError(t, err)
	id := insert(ctx, t, tx, table, "rolled-back", 0)
	require.NoError(t, tx.Rollback())
	_, ok := get(ctx, t, drv, table, id)
	require.False(t, ok)
}

// A locking SELECT built with ForUpdate goes to the primary; the same query
// without it to the replica.
func TestForUpdateGoesToPrimary(t *testing.T) {
	drv, table := open(t)
	ctx := compattest.Ctx(t)
	id := insert(ctx, t, drv, table, "locked", 1)
	where := func(locking bool) (string, []any) {
		s := pg.Select("pg_is_in_recovery()").From(pg.Table(table)).Where(entsql.EQ("id", id))
		if locking {
			s = s.ForUpdate()
		}
		return s.Query()
	}
	for _, locking := range []bool{true, false} {
		q, args := where(locking)
		var rows entsql.Rows
		require.NoError(t, drv.Query(ctx, q, args, &rows))
		require.True(t, rows.Next(), "%s: row not visible", q)
		var inRecovery bool
		require.NoError(t, rows.Scan(&inRecovery))
		require.NoError(t, rows.Close())
		require.Equal(t, !locking, inRecovery, "%s ran on the wrong server", q)
	}
}

// entsql.WithVar sets session variables (SET before the statement, RESET
// after, on one connection): pgwait carries them to the replica that runs
// the read.
func TestWithVar(t *testing.T) {
	drv, table := open(t)
	ctx := compattest.Ctx(t)
	for i := range 10 {
		id := insert(ctx, t, drv, table, fmt.Sprint("var-", i), i)
		vctx := entsql.WithVar(ctx, "application_name", fmt.Sprint("ent-compat-", i))
		q, args := pg.Select("name", "current_setting('application_name')", "pg_is_in_recovery()").
			From(pg.Table(table)).Where(entsql.EQ("id", id)).Query()
		var rows entsql.Rows
		require.NoError(t, drv.Query(vctx, q, args, &rows))
		require.True(t, rows.Next(), "round %d: row not visible", i)
		var name, app string
		var inRecovery bool
		require.NoError(t, rows.Scan(&name, &app, &inRecovery))
		require.NoError(t, rows.Close())
		require.Equal(t, fmt.Sprint("var-", i), name)
		require.Equal(t, fmt.Sprint("ent-compat-", i), app, "the session variable did not reach the server that ran the read")
		require.True(t, inRecovery, "the read ran on the primary")
	}
	// RESET reached every server: a plain read sees the default again.
	var rows entsql.Rows
	require.NoError(t, drv.Query(ctx, "SELECT current_setting('application_name')", []any{}, &rows))
	app, err := entsql.ScanString(rows)
	require.NoError(t, err)
	require.NotContains(t, app, "ent-compat")
}
