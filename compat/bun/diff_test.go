package buncompat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/pgwait/pgwait/compat/internal/difftest"
)

// The models of the differential workload.

type Writer struct {
	bun.BaseModel `bun:"table:writers"`

	ID     int64    `bun:",pk,autoincrement"`
	Name   string   `bun:",unique,notnull"`
	Essays []*Essay `bun:"rel:has-many,join:id=writer_id"`
}

type Essay struct {
	bun.BaseModel `bun:"table:essays"`

	ID       int64    `bun:",pk,autoincrement"`
	WriterID int64    `bun:",notnull"`
	Writer   *Writer  `bun:"rel:belongs-to,join:writer_id=id"`
	Title    string   `bun:",notnull"`
	Words    int32    `bun:",notnull,default:0"`
	Topics   []*Topic `bun:"m2m:essay_topics,join:Essay=Topic"`
}

// EssayV2 is the essays table after the second migration: words widened to
// bigint, a column added.
type EssayV2 struct {
	bun.BaseModel `bun:"table:essays,alias:e"`

	ID       int64 `bun:",pk,autoincrement"`
	WriterID int64 `bun:",notnull"`
	Title    string
	Words    int64
	Summary  sql.NullString
	Deleted  time.Time `bun:",soft_delete,nullzero"`
}

type Topic struct {
	bun.BaseModel `bun:"table:topics"`

	ID   int64  `bun:",pk,autoincrement"`
	Name string `bun:",unique,notnull"`
}

type EssayTopic struct {
	bun.BaseModel `bun:"table:essay_topics"`

	EssayID int64  `bun:",pk"`
	Essay   *Essay `bun:"rel:belongs-to,join:essay_id=id"`
	TopicID int64  `bun:",pk"`
	Topic   *Topic `bun:"rel:belongs-to,join:topic_id=id"`
}

// migration runs Go migrations through bun/migrate, as applications do.
func migration(name string, up func(ctx context.Context, db *bun.DB) error) migrate.Migration {
	return migrate.Migration{Name: name, Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
		return up(ctx, m.DB())
	}}
}

// bunWorkload is an application's use of bun: versioned migrations (a
// second one changing a column's type and adding columns, with reads and
// writes before and after), inserts one and many, selects with has-many,
// belongs-to and many-to-many relations, updates (bulk included), upserts,
// soft and hard deletes, ScanAndCount, transactions and raw queries.
func bunWorkload(t *testing.T, sqlDB *sql.DB, tr *difftest.Transcript) {
	db := bun.NewDB(sqlDB, pgdialect.New())
	db.RegisterModel((*EssayTopic)(nil))
	ctx := context.Background()
	res := func(r sql.Result, err error, v any) (any, error) {
		if err != nil {
			return v, err
		}
		n, err := r.RowsAffected()
		return fmt.Sprintf("rows=%d %s", n, difftest.Format(v)), err
	}
	group := func(g *migrate.MigrationGroup, err error) (any, error) {
		if err != nil || g == nil {
			return nil, err
		}
		var names []string
		for _, m := range g.Migrations {
			names = append(names, m.Name)
		}
		return fmt.Sprint(g.ID, names), nil
	}

	migrations := migrate.NewMigrations()
	migrations.Add(migration("20260101000001_init", func(ctx context.Context, db *bun.DB) error {
		for _, m := range []any{(*Writer)(nil), (*Essay)(nil), (*Topic)(nil), (*EssayTopic)(nil)} {
			if _, err := db.NewCreateTable().Model(m).WithForeignKeys().Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}))
	migrator := migrate.NewMigrator(db, migrations)
	tr.Do("migrator Init", func() (any, error) { return nil, migrator.Init(ctx) })
	tr.Do("Migrate 1", func() (any, error) { return group(migrator.Migrate(ctx)) })
	tr.Do("Migrate 1 again", func() (any, error) { return group(migrator.Migrate(ctx)) })

	tr.Do("insert writers", func() (any, error) {
		ws := []*Writer{{Name: "orwell"}, {Name: "woolf"}, {Name: "baldwin"}}
		r, err := db.NewInsert().Model(&ws).Exec(ctx)
		return res(r, err, ws)
	})
	tr.Do("insert topics", func() (any, error) {
		ts := []Topic{{Name: "politics"}, {Name: "language"}, {Name: "home"}}
		r, err := db.NewInsert().Model(&ts).Returning("*").Exec(ctx)
		return res(r, err, ts)
	})
	tr.Do("insert essays", func() (any, error) {
		es := []Essay{
			{WriterID: 1, Title: "Politics and the English Language", Words: 5000},
			{WriterID: 1, Title: "Shooting an Elephant", Words: 3000},
			{WriterID: 2, Title: "A Room of One's Own", Words: 38000},
			{WriterID: 3, Title: "Notes of a Native Son", Words: 9000},
		}
		r, err := db.NewInsert().Model(&es).Exec(ctx)
		return res(r, err, es)
	})
	tr.Do("insert essay_topics", func() (any, error) {
		ets := []EssayTopic{{EssayID: 1, TopicID: 1}, {EssayID: 1, TopicID: 2}, {EssayID: 3, TopicID: 3}, {EssayID: 4, TopicID: 1}}
		r, err := db.NewInsert().Model(&ets).Exec(ctx)
		return res(r, err, nil)
	})
	tr.Do("insert duplicate", func() (any, error) {
		r, err := db.NewInsert().Model(&Writer{Name: "woolf"}).Exec(ctx)
		return res(r, err, nil)
	})
	tr.Do("upsert", func() (any, error) {
		w := &Writer{Name: "woolf"}
		r, err := db.NewInsert().Model(w).On("CONFLICT (name) DO UPDATE").Set("name = EXCLUDED.name || '!'").Exec(ctx)
		return res(r, err, w)
	})

	relations := func(when string) {
		tr.Do(when+": has-many and m2m", func() (any, error) {
			var ws []Writer
			err := db.NewSelect().Model(&ws).
				Relation("Essays", func(q *bun.SelectQuery) *bun.SelectQuery { return q.Order("essay.id") }).
				Relation("Essays.Topics", func(q *bun.SelectQuery) *bun.SelectQuery { return q.Order("topic.id") }).
				Order("writer.id").Scan(ctx)
			return ws, err
		})
		tr.Do(when+": belongs-to join", func() (any, error) {
			var es []Essay
			err := db.NewSelect().Model(&es).Relation("Writer").Where("essay.words > ?", 4000).Order("essay.id").Scan(ctx)
			return es, err
		})
		tr.Do(when+": ScanAndCount", func() (any, error) {
			var es []Essay
			n, err := db.NewSelect().Model(&es).Where("writer_id = ?", 1).Order("id").Limit(1).ScanAndCount(ctx)
			return []any{n, es}, err
		})
		tr.Do(when+": scan into map", func() (any, error) {
			var ms []map[string]any
			err := db.NewSelect().Model((*Essay)(nil)).Order("id").Scan(ctx, &ms)
			return ms, err
		})
	}
	relations("before migration 2")
	tr.Do("update one", func() (any, error) {
		e := &Essay{ID: 2}
		r, err := db.NewUpdate().Model(e).Set("words = words + ?", 1).WherePK().Returning("words").Exec(ctx)
		return res(r, err, e.Words)
	})

	migrations.Add(migration("20260101000002_widen", func(ctx context.Context, db *bun.DB) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE essays ALTER COLUMN words TYPE bigint, ALTER COLUMN title DROP NOT NULL"); err != nil {
				return err
			}
			if _, err := tx.NewAddColumn().Model((*EssayV2)(nil)).ColumnExpr("summary text").Exec(ctx); err != nil {
				return err
			}
			if _, err := tx.NewAddColumn().Model((*EssayV2)(nil)).ColumnExpr("deleted timestamptz").Exec(ctx); err != nil {
				return err
			}
			_, err := tx.NewCreateIndex().Model((*EssayV2)(nil)).Index("essays_words_idx").Column("words").Exec(ctx)
			return err
		})
	}))
	tr.Do("Migrate 2", func() (any, error) { return group(migrator.Migrate(ctx)) })
	tr.Do("applied migrations", func() (any, error) {
		ms, err := migrator.AppliedMigrations(ctx)
		var names []string
		for _, m := range ms {
			names = append(names, fmt.Sprint(m.ID, m.Name, m.GroupID))
		}
		return names, err
	})
	relations("after migration 2")
	tr.Do("v2: insert", func() (any, error) {
		es := []EssayV2{
			{WriterID: 2, Title: "Three Guineas", Words: 1 << 33, Summary: sql.NullString{String: "war", Valid: true}},
			{WriterID: 3},
		}
		r, err := db.NewInsert().Model(&es).Exec(ctx)
		return res(r, err, es)
	})
	tr.Do("v2: select", func() (any, error) {
		var es []EssayV2
		err := db.NewSelect().Model(&es).Order("id").Scan(ctx)
		return es, err
	})
	tr.Do("v2: bulk update from values", func() (any, error) {
		es := []*EssayV2{{ID: 1, Summary: sql.NullString{String: "clarity", Valid: true}}, {ID: 3, Summary: sql.NullString{String: "money", Valid: true}}}
		r, err := db.NewUpdate().With("_data", db.NewValues(&es)).Model((*EssayV2)(nil)).TableExpr("_data").
			Set("summary = _data.summary").Where("e.id = _data.id").Exec(ctx)
		return res(r, err, nil)
	})
	tr.Do("v2: soft delete", func() (any, error) {
		r, err := db.NewDelete().Model((*EssayV2)(nil)).Where("words > ?", 10000).Exec(ctx)
		return res(r, err, nil)
	})
	tr.Do("v2: select after soft delete", func() (any, error) {
		var ids []int64
		err := db.NewSelect().Model((*EssayV2)(nil)).Column("id").Order("id").Scan(ctx, &ids)
		return ids, err
	})
	tr.Do("v2: WhereDeleted count", func() (any, error) {
		return db.NewSelect().Model((*EssayV2)(nil)).WhereDeleted().Count(ctx)
	})
	tr.Do("v2: hard delete", func() (any, error) {
		r, err := db.NewDelete().Model((*EssayV2)(nil)).Where("words = 0").ForceDelete().Exec(ctx)
		return res(r, err, nil)
	})

	tr.Do("RunInTx commit", func() (any, error) {
		var n int64
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(&Topic{Name: "race"}).Exec(ctx); err != nil {
				return err
			}
			c, err := tx.NewSelect().Model((*Topic)(nil)).Count(ctx)
			n = int64(c)
			return err
		})
		return n, err
	})
	tr.Do("RunInTx rollback on violation", func() (any, error) {
		return nil, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(&Topic{Name: "class"}).Exec(ctx); err != nil {
				return err
			}
			_, err := tx.NewInsert().Model(&EssayTopic{EssayID: 99, TopicID: 1}).Exec(ctx)
			return err
		})
	})
	tr.Do("RunInTx read-only", func() (any, error) {
		var names []string
		err := db.RunInTx(ctx, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.NewSelect().Model((*Topic)(nil)).Column("name").Order("id").Scan(ctx, &names); err != nil {
				return err
			}
			_, err := tx.NewDelete().Model((*Topic)(nil)).Where("TRUE").Exec(ctx)
			return err
		})
		return names, err
	})
	tr.Do("raw query", func() (any, error) {
		var rows []struct {
			Writer string
			Words  int64
			Titles []string `bun:",array"`
		}
		err := db.NewRaw("SELECT w.name AS writer, sum(e.words) AS words, array_agg(e.title ORDER BY e.id) AS titles FROM writers w JOIN essays e ON e.writer_id = w.id GROUP BY w.name ORDER BY w.name").Scan(ctx, &rows)
		return rows, err
	})
	tr.Do("error then read", func() (any, error) {
		_, err := db.NewSelect().Model((*Writer)(nil)).Where("nosuch = 1").Count(ctx)
		n, err2 := db.NewSelect().Model((*Writer)(nil)).Count(ctx)
		return []any{difftest.ErrText(err), n}, err2
	})
	tr.Do("no rows", func() (any, error) {
		w := new(Writer)
		err := db.NewSelect().Model(w).Where("id = ?", 999).Scan(ctx)
		return errors.Is(err, sql.ErrNoRows), err
	})
}

// TestDiffPgxStdlib runs the bun workload through pgx stdlib on the primary
// and through pgwait on the primary and the replica, and compares.
func TestDiffPgxStdlib(t *testing.T) {
	require.NoError(t, difftest.Run(t, difftest.Options{Name: "bun"}, bunWorkload))
}
