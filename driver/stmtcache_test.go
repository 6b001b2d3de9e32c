package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
)

// The statement cache follows pgx's rules: a statement whose cached plan
// went stale (DDL on the primary, or replayed on a replica) is prepared
// again and, when nothing was executed, run again; names never go out of
// step with the server after errors, DISCARD or DEALLOCATE.

// oneConn returns a single pooled connection of a fresh pgwait handle, so
// that every statement of a test meets the same statement caches.
func oneConn(t *testing.T, ctx context.Context) (*sql.DB, *sql.Conn) {
	t.Helper()
	db := open(t, shared(t))
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return db, conn
}

func TestSchemaChangeKeepsCachedStatementsWorking(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func(context.Context) context.Context
		// write makes the next read wait (replica reads only).
		write bool
	}{
		{name: "primary", ctx: pgwait.OnPrimary},
		{name: "replica without wait", ctx: func(ctx context.Context) context.Context { return ctx }},
		{name: "replica with wait", ctx: func(ctx context.Context) context.Context { return ctx }, write: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			db, conn := oneConn(t, ctx)
			tbl := table(t, db)
			_, err := conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v, n) VALUES ('a', 1)")
			require.NoError(t, err)
			rctx := tc.ctx(ctx)
			q := "SELECT * FROM " + tbl + " WHERE n = $1"
			cols := func() []string {
				t.Helper()
				if tc.write {
					_, err := conn.ExecContext(ctx, "UPDATE "+tbl+" SET n = n WHERE false")
					require.NoError(t, err)
				}
				rows, err := conn.QueryContext(rctx, q, 1)
				require.NoError(t, err, "no error reaches the caller after a migration")
				defer rows.Close()
				types, err := rows.ColumnTypes()
				require.NoError(t, err)
				names, err := rows.Columns()
				require.NoError(t, err)
				require.Len(t, types, len(names))
				require.True(t, rows.Next())
				vals := make([]any, len(names))
				for i := range vals {
					vals[i] = new(any)
				}
				require.NoError(t, rows.Scan(vals...))
				require.NoError(t, rows.Close())
				return names
			}
			assert.Equal(t, []string{"id", "v", "n"}, cols())
			assert.Equal(t, []string{"id", "v", "n"}, cols())
			_, err = conn.ExecContext(ctx, "ALTER TABLE "+tbl+" ADD COLUMN extra text DEFAULT 'x'")
			require.NoError(t, err)
			if !tc.write {
				// Let the replica replay the DDL without a wait in the read.
				waitReplayed(t, ctx, db)
			}
			for range 3 {
				assert.Equal(t, []string{"id", "v", "n", "extra"}, cols())
			}
			_, err = conn.ExecContext(ctx, "ALTER TABLE "+tbl+" ALTER COLUMN n TYPE bigint")
			require.NoError(t, err)
			if !tc.write {
				waitReplayed(t, ctx, db)
			}
			assert.Equal(t, []string{"id", "v", "n", "extra"}, cols())
			// Writes on the changed table.
			_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v, n, extra) VALUES ($1, $2, $3)", "b", 1, "y")
			require.NoError(t, err)
			var n int
			require.NoError(t, conn.QueryRowContext(rctx, "SELECT count(*) FROM "+tbl+" WHERE n = $1", 1).Scan(&n))
			assert.Equal(t, 2, n)
			if tc.name != "primary" {
				assert.NotZero(t, stats(t, db).ReplicaReads, "reads ran on the replica")
			}
		})
	}
}

// waitReplayed makes the replica replay everything the handle wrote, through
// a read that waits for it.
func waitReplayed(t *testing.T, ctx context.Context, db *sql.DB) {
	t.Helper()
	var one int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
}

func TestPreparedStatementSurvivesSchemaChange(t *testing.T) {
	ctx := ctxT(t)
	db, conn := oneConn(t, ctx)
	tbl := table(t, db)
	_, err := conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v, n) VALUES ('a', 1)")
	require.NoError(t, err)
	stmt, err := conn.PrepareContext(ctx, "SELECT * FROM "+tbl+" WHERE n = $1")
	require.NoError(t, err)
	defer stmt.Close()
	count := func() int {
		t.Helper()
		rows, err := stmt.QueryContext(ctx, 1)
		require.NoError(t, err)
		defer rows.Close()
		names, _ := rows.Columns()
		return len(names)
	}
	assert.Equal(t, 3, count())
	_, err = conn.ExecContext(ctx, "ALTER TABLE "+tbl+" ADD COLUMN extra int")
	require.NoError(t, err)
	for range 3 {
		assert.Equal(t, 4, count())
	}
}

func TestStatementsAfterErrorsOnTheSameConnection(t *testing.T) {
	ctx := ctxT(t)
	db, conn := oneConn(t, ctx)
	tbl := table(t, db)
	for _, ctx := range []context.Context{pgwait.OnPrimary(ctx), ctx} {
		for i := range 3 {
			_, err := conn.QueryContext(ctx, "SELECT * FROM "+tbl+" WHERE n = $1::int", "not a number")
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			assert.Equal(t, "22P02", pgErr.Code)
			_, err = conn.QueryContext(ctx, "SELECT nosuchcolumn FROM "+tbl)
			require.ErrorAs(t, err, &pgErr)
			assert.Equal(t, "42703", pgErr.Code)
			_, err = conn.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", "dup") // 23505 after the first
			if i > 0 {
				require.ErrorAs(t, err, &pgErr)
				assert.Equal(t, "23505", pgErr.Code)
			}
			var n int
			require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE n = $1", 0).Scan(&n), "round %d", i)
		}
	}
}

func TestApplicationDiscardAndDeallocate(t *testing.T) {
	for _, stmt := range []string{"DISCARD ALL", "DEALLOCATE ALL", "DISCARD PLANS"} {
		t.Run(stmt, func(t *testing.T) {
			ctx := ctxT(t)
			db, conn := oneConn(t, ctx)
			tbl := table(t, db)
			read := func(ctx context.Context) {
				t.Helper()
				var n int
				require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE n = $1", 0).Scan(&n))
				_, err := conn.ExecContext(ctx, "UPDATE "+tbl+" SET n = $1 WHERE false", 1)
				require.NoError(t, err)
			}
			read(ctx)
			read(pgwait.OnPrimary(ctx))
			_, err := conn.ExecContext(ctx, stmt)
			require.NoError(t, err)
			read(ctx)
			read(pgwait.OnPrimary(ctx))
			rows, err := conn.QueryContext(ctx, stmt)
			require.NoError(t, err)
			require.NoError(t, rows.Close())
			read(ctx)
			read(pgwait.OnPrimary(ctx))
		})
	}
}

func TestDeallocateBehindTheDriversBack(t *testing.T) {
	ctx := ctxT(t)
	db, conn := oneConn(t, ctx)
	tbl := table(t, db)
	q := "SELECT count(*) FROM " + tbl + " WHERE n = $1"
	var n int
	require.NoError(t, conn.QueryRowContext(ctx, q, 0).Scan(&n))
	require.NoError(t, conn.QueryRowContext(pgwait.OnPrimary(ctx), q, 0).Scan(&n))
	require.NoError(t, conn.Raw(func(dc any) error {
		c := dc.(*pgwaitdriver.Conn)
		for _, get := range []func(context.Context) (interface{ PgConn() *pgconn.PgConn }, error){
			func(ctx context.Context) (interface{ PgConn() *pgconn.PgConn }, error) { return c.Primary(ctx) },
			func(ctx context.Context) (interface{ PgConn() *pgconn.PgConn }, error) { return c.Replica(ctx) },
		} {
			p, err := get(ctx)
			if err != nil {
				return err
			}
			if _, err := p.PgConn().Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, conn.QueryRowContext(ctx, q, 0).Scan(&n), "26000 on the replica: prepared again and run")
	require.NoError(t, conn.QueryRowContext(pgwait.OnPrimary(ctx), q, 0).Scan(&n), "26000 on the primary: prepared again and run")
}

func TestPrepareReportsErrorsLikePgxStdlib(t *testing.T) {
	ctx := ctxT(t)
	db := open(t, shared(t))
	std, err := sql.Open("pgx", shared(t).PrimaryDSN())
	require.NoError(t, err)
	defer std.Close()
	for _, q := range []string{"SELEC 1", "SELECT * FROM no_such_table_at_all", "SELECT $1::nosuchtype"} {
		_, wantErr := std.PrepareContext(ctx, q)
		_, gotErr := db.PrepareContext(ctx, q)
		var want, got *pgconn.PgError
		require.ErrorAs(t, wantErr, &want, q)
		require.ErrorAs(t, gotErr, &got, "Prepare reports the error at prepare time: %s", q)
		assert.Equal(t, want.Code, got.Code)
		assert.Equal(t, want.Message, got.Message)
	}
	stmt, err := db.PrepareContext(ctx, "SELECT $1::int + $2::int")
	require.NoError(t, err)
	defer stmt.Close()
	_, err = stmt.QueryContext(ctx, 1)
	assert.EqualError(t, err, "sql: expected 2 arguments, got 1", "NumInput comes from the server, as with pgx stdlib")
}

// A replica read that waits, after its cached statement went stale there,
// must never meet its own statement name still on the server (42P05).
func TestWaitPipelineNeverDuplicatesStatementNames(t *testing.T) {
	ctx := ctxT(t)
	db, conn := oneConn(t, ctx)
	tbl := table(t, db)
	q := "SELECT * FROM " + tbl + " WHERE n = $1"
	read := func() error {
		_, err := conn.ExecContext(ctx, "UPDATE "+tbl+" SET n = n WHERE false") // the read must wait
		require.NoError(t, err)
		rows, err := conn.QueryContext(ctx, q, 0)
		if err != nil {
			return err
		}
		return rows.Close()
	}
	require.NoError(t, read())
	_, err := conn.ExecContext(ctx, "ALTER TABLE "+tbl+" ADD COLUMN extra int")
	require.NoError(t, err)
	var errs []error
	for range 4 {
		if err := read(); err != nil {
			errs = append(errs, err)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42P05" {
				t.Fatalf("the wait pipeline prepared a name the replica still had: %v", err)
			}
		}
	}
	assert.Empty(t, errs, "a stale plan is prepared again and run")
	assert.NotZero(t, stats(t, db).Waits)
}
