package sqlxcompat_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/compattest"
	_ "github.com/pgwait/pgwait/driver"
)

func TestMain(m *testing.M) {
	// sqlx knows the placeholder style of the drivers it has heard of; it
	// must be told pgwait's, once, before opening.
	sqlx.BindDriver("pgwait", sqlx.DOLLAR)
	os.Exit(compattest.Main(m))
}

type Item struct {
	ID   int64  `db:"id"`
	Name string `db:"name"`
	N    int    `db:"n"`
}

// open opens sqlx on pgwait and creates a fresh items table.
func open(t *testing.T) (*sqlx.DB, string) {
	t.Helper()
	db, err := sqlx.Open("pgwait", compattest.DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.Equal(t, sqlx.DOLLAR, sqlx.BindType(db.DriverName()))
	require.Equal(t, "SELECT $1, $2", db.Rebind("SELECT ?, ?"))
	table := compattest.Name("items")
	db.MustExecContext(compattest.Ctx(t), "CREATE TABLE "+table+" (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL, n int NOT NULL)")
	return db, table
}

func TestReplicaLags(t *testing.T) { compattest.RequireReplicaLags(t) }

// NamedExec, then Get and Select at once, compattest.Loops times.
func TestNamedExecThenGetSelect(t *testing.T) {
	db, table := open(t)
	ctx := compattest.Ctx(t)
	before := compattest.Stats(t, db.DB)
	stale := 0
	for i := range compattest.Loops {
		in := Item{Name: fmt.Sprintf("item-%d", i), N: i}
		_, err := db.NamedExecContext(ctx, "INSERT INTO "+table+" (name, n) VALUES (:name, :n)", in)
		require.NoError(t, err)

		var got Item
		err = db.GetContext(ctx, &got, "SELECT id, name, n FROM "+table+" WHERE name = $1", in.Name)
		if errors.Is(err, sql.ErrNoRows) {
			stale++
			continue
		}
		require.NoError(t, err)
		require.Equal(t, i, got.N)

		if i%10 == 0 {
			var all []Item
			require.NoError(t, db.SelectContext(ctx, &all, "SELECT id, name, n FROM "+table+" ORDER BY n"))
			require.Len(t, all, i+1, "Select misses rows just inserted")
		}
	}
	require.Zero(t, stale, "stale reads")
	compattest.RequireReplicaRYW(t, compattest.Sub(compattest.Stats(t, db.DB), before), compattest.Loops)
}

// NamedQuery with RETURNING (a write sent through Query) goes to the primary
// and its commit is waited for by the next read.
func TestNamedQueryReturning(t *testing.T) {
	db, table := open(t)
	ctx := compattest.Ctx(t)
	before := compattest.Stats(t, db.DB)
	const n = 50
	for i := range n {
		rows, err := db.NamedQueryContext(ctx, "INSERT INTO "+table+" (name, n) VALUES (:name, :n) RETURNING id", Item{Name: fmt.Sprint("r", i), N: i})
		require.NoError(t, err)
		require.True(t, rows.Next())
		var id int64
		require.NoError(t, rows.Scan(&id))
		require.False(t, rows.Next())
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())

		var got Item
		require.NoError(t, db.GetContext(ctx, &got, "SELECT id, name, n FROM "+table+" WHERE id = $1", id), "round %d: row not visible", i)
		require.Equal(t, i, got.N)
	}
	compattest.RequireReplicaRYW(t, compattest.Sub(compattest.Stats(t, db.DB), before), n)
}

// sqlx.In expands a slice into (?, ?, ...), Rebind turns it into $n, and
// the read sees rows written just before.
func TestIn(t *testing.T) {
	db, table := open(t)
	ctx := compattest.Ctx(t)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprint("in-", i))
	}
	for round := range 10 {
		var ids []int64
		for i, name := range names {
			var id int64
			name := fmt.Sprint(name, "-", round)
			require.NoError(t, db.QueryRowxContext(ctx, "INSERT INTO "+table+" (name, n) VALUES ($1, $2) RETURNING id", name, i).Scan(&id))
			ids = append(ids, id)
		}

		before := compattest.Stats(t, db.DB)
		q, args, err := sqlx.In("SELECT id, name, n FROM "+table+" WHERE id IN (?) AND n >= ? ORDER BY n", ids, 5)
		require.NoError(t, err)
		q = db.Rebind(q)
		require.Len(t, args, len(ids)+1)
		var got []Item
		require.NoError(t, db.SelectContext(ctx, &got, q, args...))
		require.Len(t, got, len(ids)-5, "round %d: rows just inserted are missing", round)

		// Named and In together.
		q, args, err = sqlx.Named("SELECT count(*) FROM "+table+" WHERE id IN (:ids) AND n < :max", map[string]any{"ids": ids, "max": 5})
		require.NoError(t, err)
		q, args, err = sqlx.In(q, args...)
		require.NoError(t, err)
		var count int
		require.NoError(t, db.GetContext(ctx, &count, db.Rebind(q), args...))
		require.Equal(t, 5, count)

		d := compattest.Sub(compattest.Stats(t, db.DB), before)
		require.EqualValues(t, 2, d.ReplicaReads)
		require.Zero(t, d.PrimaryReads)
	}
}

// Transactions: Beginx runs on the primary and commits; a read-only BeginTxx
// runs on the replica and sees that commit; Preparex and PrepareNamed
// statements work on either side.
func TestTxAndPrepared(t *testing.T) {
	db, table := open(t)
	ctx := compattest.Ctx(t)

	get, err := db.PreparexContext(ctx, "SELECT id, name, n FROM "+table+" WHERE name = $1")
	require.NoError(t, err)
	defer get.Close()
	ins, err := db.PrepareNamedContext(ctx, "INSERT INTO "+table+" (name, n) VALUES (:name, :n)")
	require.NoError(t, err)
	defer ins.Close()

	before := compattest.Stats(t, db.DB)
	const n = 30
	for i := range n {
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.NamedExecContext(ctx, "INSERT INTO "+table+" (name, n) VALUES (:name, :n)", Item{Name: fmt.Sprint("tx-", i), N: i})
		require.NoError(t, err)
		var inTx Item
		require.NoError(t, tx.GetContext(ctx, &inTx, "SELECT id, name, n FROM "+table+" WHERE name = $1", fmt.Sprint("tx-", i)))
		require.NoError(t, tx.Commit())

		var got Item
		require.NoError(t, get.GetContext(ctx, &got, fmt.Sprint("tx-", i)), "round %d: committed row not visible", i)
		require.Equal(t, inTx.ID, got.ID)

		_, err = ins.ExecContext(ctx, Item{Name: fmt.Sprint("prep-", i), N: i})
		require.NoError(t, err)

		ro, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		var inRecovery bool
		require.NoError(t, ro.GetContext(ctx, &inRecovery, "SELECT pg_is_in_recovery()"))
		require.True(t, inRecovery, "read-only transaction ran on the primary")
		require.NoError(t, ro.GetContext(ctx, &got, "SELECT id, name, n FROM "+table+" WHERE name = $1", fmt.Sprint("prep-", i)),
			"round %d: read-only transaction misses the write before it", i)
		require.NoError(t, ro.Commit())
	}
	d := compattest.Sub(compattest.Stats(t, db.DB), before)
	t.Logf("pgwait stats: %+v", d)
	require.GreaterOrEqual(t, d.Writes, uint64(2*n))
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(n))
	require.Zero(t, d.Fallbacks)
}
