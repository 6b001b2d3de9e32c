package sqlxcompat_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/compattest"
)

// Results read only in part, failing reads and large results, each right
// after a write (so behind a WAIT FOR LSN), on one connection: the
// connection stays usable and the reads stay fresh.
func TestPartialFailingLargeReads(t *testing.T) {
	db, table := open(t)
	db.SetMaxOpenConns(1)
	ctx := compattest.Ctx(t)
	before := compattest.Stats(t, db.DB)
	const rounds = 20
	for i := range rounds {
		// A write of many rows, then a Get that reads one row of many and
		// closes the rest unread.
		_, err := db.ExecContext(ctx, "INSERT INTO "+table+" (name, n) SELECT $1 || g, g FROM generate_series(1, 500) g", fmt.Sprint("bulk-", i, "-"))
		require.NoError(t, err)
		var first Item
		require.NoError(t, db.GetContext(ctx, &first, "SELECT id, name, n FROM "+table+" WHERE name LIKE $1 ORDER BY n", fmt.Sprint("bulk-", i, "-%")))
		require.Equal(t, 1, first.N)

		// A read that fails on the replica, after a write.
		_, err = db.ExecContext(ctx, "UPDATE "+table+" SET n = n + 1 WHERE name = $1", fmt.Sprint("bulk-", i, "-1"))
		require.NoError(t, err)
		var x int
		err = db.GetContext(ctx, &x, "SELECT 1 / (n - n) FROM "+table+" WHERE name = $1", fmt.Sprint("bulk-", i, "-1"))
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "22012", pgErr.Code, "division by zero")

		// The whole result, read after the failure on the same connection.
		var all []Item
		require.NoError(t, db.SelectContext(ctx, &all, "SELECT id, name, n FROM "+table+" WHERE name LIKE $1 ORDER BY n", fmt.Sprint("bulk-", i, "-%")))
		require.Len(t, all, 500)
		require.Equal(t, 2, all[0].N, "the update just before is missing")
	}

	// A large value written, then read at once.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	_, err := db.ExecContext(ctx, "CREATE TABLE "+table+"_big (id int PRIMARY KEY, b bytea)")
	require.NoError(t, err)
	for i := range 3 {
		_, err := db.ExecContext(ctx, "INSERT INTO "+table+"_big VALUES ($1, $2)", i, big)
		require.NoError(t, err)
		var got []byte
		require.NoError(t, db.GetContext(ctx, &got, "SELECT b FROM "+table+"_big WHERE id = $1", i))
		require.True(t, bytes.Equal(big, got), "round %d: large value read back wrong (%d bytes)", i, len(got))
	}

	d := compattest.Sub(compattest.Stats(t, db.DB), before)
	t.Logf("pgwait stats: %+v", d)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(2*rounds+3))
	require.Zero(t, d.PrimaryReads)
	require.Zero(t, d.Fallbacks)

	// A read-only transaction whose statement fails rolls back cleanly, and
	// the connection serves the next one.
	for range 3 {
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		var x int
		require.Error(t, tx.GetContext(ctx, &x, "SELECT 1/0"))
		require.NoError(t, tx.Rollback())
		require.NoError(t, db.GetContext(ctx, &x, "SELECT 1"))
	}
}
