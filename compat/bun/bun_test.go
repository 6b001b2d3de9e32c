package buncompat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/pgwait/pgwait/compat/internal/compattest"
	_ "github.com/pgwait/pgwait/driver"
)

func TestMain(m *testing.M) { os.Exit(compattest.Main(m)) }

type User struct {
	bun.BaseModel `bun:"table:bun_users"`

	ID    int64  `bun:",pk,autoincrement"`
	Name  string `bun:",unique,notnull"`
	N     int    `bun:",notnull,default:0"`
	Posts []Post `bun:"rel:has-many,join:id=user_id"`
}

type Post struct {
	bun.BaseModel `bun:"table:bun_posts"`

	ID     int64 `bun:",pk,autoincrement"`
	UserID int64 `bun:",notnull"`
	Title  string
}

// open opens bun on pgwait, the way the README tells users to, with its
// tables created by bun.
func open(t *testing.T) (*bun.DB, *sql.DB) {
	t.Helper()
	sqldb := compattest.Open(t, "pgwait")
	db := bun.NewDB(sqldb, pgdialect.New())
	ctx := compattest.Ctx(t)
	for _, model := range []any{(*User)(nil), (*Post)(nil)} {
		_, err := db.NewCreateTable().Model(model).IfNotExists().Exec(ctx)
		require.NoError(t, err)
	}
	// The table was just created on the primary: a replica read sees it.
	_, err := db.NewSelect().Model((*User)(nil)).Count(ctx)
	require.NoError(t, err, "the replica does not see the table just created")
	return db, sqldb
}

func TestReplicaLags(t *testing.T) { compattest.RequireReplicaLags(t) }

// Model insert (INSERT ... RETURNING "id", which bun sends through Query),
// then select at once; an update, then select at once; compattest.Loops
// times.
func TestInsertThenSelect(t *testing.T) {
	db, sqldb := open(t)
	ctx := compattest.Ctx(t)
	before := compattest.Stats(t, sqldb)
	stale := 0
	for i := range compattest.Loops {
		u := &User{Name: compattest.Name(t.Name()), N: i}
		_, err := db.NewInsert().Model(u).Exec(ctx)
		require.NoError(t, err)
		require.NotZero(t, u.ID, "RETURNING id came back")

		got := new(User)
		err = db.NewSelect().Model(got).Where("id = ?", u.ID).Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			stale++
			continue
		}
		require.NoError(t, err)
		require.Equal(t, u.Name, got.Name)

		if i%4 == 0 {
			_, err := db.NewUpdate().Model(got).Set("n = n + 1000").WherePK().Exec(ctx)
			require.NoError(t, err)
			var n int
			require.NoError(t, db.NewSelect().Model((*User)(nil)).Column("n").Where("id = ?", u.ID).Scan(ctx, &n))
			if n != i+1000 {
				stale++
			}
		}
	}
	require.Zero(t, stale, "stale reads")
	compattest.RequireReplicaRYW(t, compattest.Sub(compattest.Stats(t, sqldb), before), compattest.Loops)
}

// A has-many relation: bulk insert of the posts, then Relation("Posts")
// (two replica queries) at once.
func TestRelation(t *testing.T) {
	db, sqldb := open(t)
	ctx := compattest.Ctx(t)
	const n = 40
	before := compattest.Stats(t, sqldb)
	for i := range n {
		u := &User{Name: compattest.Name(t.Name())}
		_, err := db.NewInsert().Model(u).Exec(ctx)
		require.NoError(t, err)
		posts := []Post{{UserID: u.ID, Title: "a"}, {UserID: u.ID, Title: "b"}, {UserID: u.ID, Title: "c"}}
		_, err = db.NewInsert().Model(&posts).Exec(ctx)
		require.NoError(t, err)

		got := new(User)
		require.NoError(t, db.NewSelect().Model(got).
			Relation("Posts", func(q *bun.SelectQuery) *bun.SelectQuery { return q.Order("id") }).
			Where("id = ?", u.ID).Scan(ctx))
		require.Len(t, got.Posts, 3, "round %d: posts just inserted are missing", i)
		require.Equal(t, "c", got.Posts[2].Title)
	}
	d := compattest.Sub(compattest.Stats(t, sqldb), before)
	compattest.RequireReplicaRYW(t, d, n)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(2*n))
}

// ScanAndCount runs its SELECT and its count(*) at once, on two pooled
// connections: both see the insert just before.
func TestScanAndCount(t *testing.T) {
	db, sqldb := open(t)
	sqldb.SetMaxOpenConns(4)
	ctx := compattest.Ctx(t)
	prefix := compattest.Name(t.Name())
	const n = 40
	before := compattest.Stats(t, sqldb)
	for i := range n {
		_, err := db.NewInsert().Model(&User{Name: fmt.Sprint(prefix, "-", i)}).Exec(ctx)
		require.NoError(t, err)
		var users []User
		count, err := db.NewSelect().Model(&users).Where("name LIKE ?", prefix+"-%").Order("id").Limit(1000).ScanAndCount(ctx)
		require.NoError(t, err)
		require.EqualValues(t, i+1, count, "round %d: count misses the insert", i)
		require.Len(t, users, i+1, "round %d: select misses the insert", i)
	}
	d := compattest.Sub(compattest.Stats(t, sqldb), before)
	compattest.RequireReplicaRYW(t, d, n)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(2*n))
}

// RunInTx: read-write on the primary (its reads see its own rows), committed
// and read back from the replica at once; a failing one rolls back; a
// read-only one runs on the replica after the writes before it.
func TestRunInTx(t *testing.T) {
	db, sqldb := open(t)
	ctx := compattest.Ctx(t)
	for i := range 20 {
		u := &User{Name: compattest.Name(t.Name())}
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(u).Exec(ctx); err != nil {
				return err
			}
			var inRecovery bool
			if err := tx.NewRaw("SELECT pg_is_in_recovery()").Scan(ctx, &inRecovery); err != nil {
				return err
			}
			if inRecovery {
				return errors.New("a read-write transaction ran on the replica")
			}
			n, err := tx.NewSelect().Model((*User)(nil)).Where("id = ?", u.ID).Count(ctx)
			if err != nil || n != 1 {
				return fmt.Errorf("the transaction does not see its own row: n=%d err=%v", n, err)
			}
			_, err = tx.NewInsert().Model(&Post{UserID: u.ID, Title: "in tx"}).Exec(ctx)
			return err
		})
		require.NoError(t, err)

		before := compattest.Stats(t, sqldb)
		got := new(User)
		require.NoError(t, db.NewSelect().Model(got).Relation("Posts").Where("id = ?", u.ID).Scan(ctx),
			"round %d: committed row not visible", i)
		require.Len(t, got.Posts, 1)
		d := compattest.Sub(compattest.Stats(t, sqldb), before)
		require.EqualValues(t, 2, d.ReplicaReads)
		require.Zero(t, d.PrimaryReads)

		err = db.RunInTx(ctx, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx bun.Tx) error {
			var inRecovery bool
			if err := tx.NewRaw("SELECT pg_is_in_recovery()").Scan(ctx, &inRecovery); err != nil {
				return err
			}
			if !inRecovery {
				return errors.New("a read-only transaction ran on the primary")
			}
			return tx.NewSelect().Model(new(User)).Where("id = ?", u.ID).Scan(ctx)
		})
		require.NoError(t, err, "round %d: read-only transaction", i)
	}

	name := compattest.Name("rolled-back")
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&User{Name: name}).Exec(ctx); err != nil {
			return err
		}
		return errors.New("abort")
	})
	require.EqualError(t, err, "abort")
	n, err := db.NewSelect().Model((*User)(nil)).Where("name = ?", name).Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// For("UPDATE") goes to the primary; the same select without it to the
// replica.
func TestForUpdateGoesToPrimary(t *testing.T) {
	db, _ := open(t)
	ctx := compattest.Ctx(t)
	u := &User{Name: compattest.Name(t.Name())}
	_, err := db.NewInsert().Model(u).Exec(ctx)
	require.NoError(t, err)
	var inRecovery bool
	require.NoError(t, db.NewSelect().Model((*User)(nil)).ColumnExpr("pg_is_in_recovery()").
		Where("id = ?", u.ID).For("UPDATE").Scan(ctx, &inRecovery))
	require.False(t, inRecovery, "SELECT ... FOR UPDATE ran on the replica")
	require.NoError(t, db.NewSelect().Model((*User)(nil)).ColumnExpr("pg_is_in_recovery()").
		Where("id = ?", u.ID).Scan(ctx, &inRecovery))
	require.True(t, inRecovery, "a plain SELECT ran on the primary")
}
