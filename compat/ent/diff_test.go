package entcompat_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/sqlgraph"
	"entgo.io/ent/schema/field"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/difftest"
)

// entMigrations are versioned migrations, applied as Atlas applies
// migration files: each in a transaction that records its version.
var entMigrations = []string{
	`CREATE TABLE users (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL, age int NOT NULL DEFAULT 0);
	CREATE TABLE pets (id bigserial PRIMARY KEY, name text NOT NULL, owner_id bigint REFERENCES users ON DELETE SET NULL);
	CREATE TABLE groups (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL);
	CREATE TABLE group_users (group_id bigint REFERENCES groups ON DELETE CASCADE, user_id bigint REFERENCES users ON DELETE CASCADE, PRIMARY KEY (group_id, user_id));`,
	`ALTER TABLE users ALTER COLUMN age TYPE bigint, ADD COLUMN nickname text;
	CREATE INDEX users_age ON users (age);`,
}

// txDriver is what generated clients hand sqlgraph inside a transaction:
// the transaction as a driver, whose own transactions are no-ops.
type txDriver struct{ tx dialect.Tx }

func (d txDriver) Exec(ctx context.Context, q string, args, v any) error {
	return d.tx.Exec(ctx, q, args, v)
}

func (d txDriver) Query(ctx context.Context, q string, args, v any) error {
	return d.tx.Query(ctx, q, args, v)
}

func (d txDriver) Tx(context.Context) (dialect.Tx, error) { return dialect.NopTx(d), nil }
func (d txDriver) Close() error                           { return nil }
func (d txDriver) Dialect() string                        { return dialect.Postgres }

// entWorkload drives ent's sqlgraph as generated clients do: versioned
// migrations (the second changing a column's type, with reads and writes
// before and after), creates with O2M and M2M edges, batch creates, queries
// with predicates, edge loading and neighbor steps, counts, updates of one
// node (with edges) and of many, deletes, transactions and errors.
func entWorkload(t *testing.T, sqlDB *sql.DB, tr *difftest.Transcript) {
	drv := entsql.OpenDB(dialect.Postgres, sqlDB)
	ctx := context.Background()
	idSpec := func() *sqlgraph.FieldSpec { return sqlgraph.NewFieldSpec("id", field.TypeInt64) }

	migrate := func(version int) (any, error) {
		tx, err := drv.Tx(ctx)
		if err != nil {
			return nil, err
		}
		if err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS revisions (version int PRIMARY KEY)", []any{}, nil); err != nil {
			tx.Rollback()
			return nil, err
		}
		var rows entsql.Rows
		if err := tx.Query(ctx, "SELECT coalesce(max(version), 0) FROM revisions", []any{}, &rows); err != nil {
			tx.Rollback()
			return nil, err
		}
		current, err := entsql.ScanInt(rows)
		rows.Close()
		if err != nil {
			tx.Rollback()
			return nil, err
		}
		applied := []int{}
		for v := current + 1; v <= version; v++ {
			if err := tx.Exec(ctx, entMigrations[v-1], []any{}, nil); err != nil {
				tx.Rollback()
				return applied, err
			}
			if err := tx.Exec(ctx, "INSERT INTO revisions (version) VALUES ($1)", []any{v}, nil); err != nil {
				tx.Rollback()
				return applied, err
			}
			applied = append(applied, v)
		}
		return applied, tx.Commit()
	}

	// query reads nodes of table with the given columns, each value as the
	// driver hands it over.
	query := func(ex dialect.Driver, table string, columns []string, spec func(*sqlgraph.QuerySpec)) (any, error) {
		var out [][]any
		qs := sqlgraph.NewQuerySpec(table, columns, idSpec())
		qs.Order = func(s *entsql.Selector) { s.OrderBy(s.C("id")) }
		qs.ScanValues = func(cols []string) ([]any, error) {
			vs := make([]any, len(cols))
			for i := range vs {
				vs[i] = new(any)
			}
			return vs, nil
		}
		qs.Assign = func(cols []string, values []any) error {
			row := []any{}
			for i, c := range cols {
				row = append(row, c, *(values[i].(*any)))
			}
			out = append(out, row)
			return nil
		}
		if spec != nil {
			spec(qs)
		}
		err := sqlgraph.QueryNodes(ctx, ex, qs)
		return out, err
	}
	userColumns := []string{"id", "name", "age"}
	petsEdge := func(ids ...driver.Value) *sqlgraph.EdgeSpec {
		return &sqlgraph.EdgeSpec{Rel: sqlgraph.O2M, Table: "pets", Columns: []string{"owner_id"},
			Target: &sqlgraph.EdgeTarget{IDSpec: idSpec(), Nodes: ids}}
	}
	groupsEdge := func(ids ...driver.Value) *sqlgraph.EdgeSpec {
		return &sqlgraph.EdgeSpec{Rel: sqlgraph.M2M, Inverse: true, Table: "group_users", Columns: []string{"group_id", "user_id"},
			Target: &sqlgraph.EdgeTarget{IDSpec: idSpec(), Nodes: ids}}
	}
	create := func(table string, fields map[string]any, edges ...*sqlgraph.EdgeSpec) (any, error) {
		spec := sqlgraph.NewCreateSpec(table, idSpec())
		for _, c := range []string{"name", "age", "nickname", "owner_id"} {
			if v, ok := fields[c]; ok {
				typ := field.TypeString
				if _, isInt := v.(int64); isInt {
					typ = field.TypeInt64
				}
				spec.SetField(c, typ, v)
			}
		}
		spec.Edges = edges
		err := sqlgraph.CreateNode(ctx, drv, spec)
		return spec.ID.Value, err
	}

	tr.Do("migrate to 1", func() (any, error) { return migrate(1) })
	tr.Do("migrate to 1 again", func() (any, error) { return migrate(1) })
	tr.Do("create groups", func() (any, error) {
		var ids []any
		for _, n := range []string{"admins", "users", "guests"} {
			id, err := create("groups", map[string]any{"name": n})
			if err != nil {
				return ids, err
			}
			ids = append(ids, id)
		}
		return ids, nil
	})
	tr.Do("batch create pets", func() (any, error) {
		var specs []*sqlgraph.CreateSpec
		for _, n := range []string{"rex", "tom", "kit", "bo"} {
			s := sqlgraph.NewCreateSpec("pets", idSpec())
			s.SetField("name", field.TypeString, n)
			specs = append(specs, s)
		}
		err := sqlgraph.BatchCreate(ctx, drv, &sqlgraph.BatchCreateSpec{Nodes: specs})
		var ids []any
		for _, s := range specs {
			ids = append(ids, s.ID.Value)
		}
		return ids, err
	})
	tr.Do("create user with edges", func() (any, error) {
		return create("users", map[string]any{"name": "a8m", "age": int64(30)}, petsEdge(int64(1), int64(2)), groupsEdge(int64(1), int64(2)))
	})
	tr.Do("create user with a pet", func() (any, error) {
		return create("users", map[string]any{"name": "nati", "age": int64(28)}, petsEdge(int64(3)), groupsEdge(int64(2)))
	})
	tr.Do("create duplicate user", func() (any, error) { return create("users", map[string]any{"name": "a8m"}) })
	tr.Do("create user on conflict update", func() (any, error) {
		spec := sqlgraph.NewCreateSpec("users", idSpec())
		spec.SetField("name", field.TypeString, "a8m")
		spec.SetField("age", field.TypeInt64, int64(31))
		spec.OnConflict = []entsql.ConflictOption{entsql.ConflictColumns("name"), entsql.ResolveWithNewValues()}
		err := sqlgraph.CreateNode(ctx, drv, spec)
		return spec.ID.Value, err
	})

	reads := func(when string) {
		tr.Do(when+": users", func() (any, error) { return query(drv, "users", userColumns, nil) })
		tr.Do(when+": users older than 29", func() (any, error) {
			return query(drv, "users", userColumns, func(qs *sqlgraph.QuerySpec) {
				qs.Predicate = func(s *entsql.Selector) { s.Where(entsql.GT(s.C("age"), 29)) }
			})
		})
		tr.Do(when+": pets of users (O2M load)", func() (any, error) {
			return query(drv, "pets", []string{"id", "name", "owner_id"}, func(qs *sqlgraph.QuerySpec) {
				qs.Predicate = func(s *entsql.Selector) { s.Where(entsql.InValues(s.C("owner_id"), int64(1), int64(2))) }
			})
		})
		tr.Do(when+": users with pets (HasNeighbors)", func() (any, error) {
			step := sqlgraph.NewStep(sqlgraph.From("users", "id"), sqlgraph.To("pets", "id"), sqlgraph.Edge(sqlgraph.O2M, false, "pets", "owner_id"))
			return query(drv, "users", userColumns, func(qs *sqlgraph.QuerySpec) {
				qs.Predicate = func(s *entsql.Selector) { sqlgraph.HasNeighbors(s, step) }
			})
		})
		tr.Do(when+": groups of a8m (M2M step)", func() (any, error) {
			step := sqlgraph.NewStep(sqlgraph.From("users", "id", int64(1)), sqlgraph.To("groups", "id"), sqlgraph.Edge(sqlgraph.M2M, true, "group_users", "group_id", "user_id"))
			return query(drv, "groups", []string{"id", "name"}, func(qs *sqlgraph.QuerySpec) {
				qs.From = sqlgraph.Neighbors(dialect.Postgres, step)
			})
		})
		tr.Do(when+": group edges (QueryEdges)", func() (any, error) {
			var out [][2]any
			err := sqlgraph.QueryEdges(ctx, drv, &sqlgraph.EdgeQuerySpec{
				Edge:       &sqlgraph.EdgeSpec{Rel: sqlgraph.M2M, Table: "group_users", Columns: []string{"group_id", "user_id"}},
				Predicate:  func(s *entsql.Selector) { s.OrderBy("group_id", "user_id") },
				ScanValues: func() [2]any { return [2]any{new(entsql.NullInt64), new(entsql.NullInt64)} },
				Assign: func(o, i any) error {
					out = append(out, [2]any{o.(*entsql.NullInt64).Int64, i.(*entsql.NullInt64).Int64})
					return nil
				},
			})
			return out, err
		})
		tr.Do(when+": count users", func() (any, error) {
			return sqlgraph.CountNodes(ctx, drv, sqlgraph.NewQuerySpec("users", userColumns, idSpec()))
		})
	}
	reads("at 1")
	tr.Do("at 1: update node with edges", func() (any, error) {
		spec := sqlgraph.NewUpdateSpec("users", userColumns, idSpec())
		spec.Node.ID.Value = int64(2)
		spec.AddField("age", field.TypeInt64, int64(1))
		spec.Edges.Add = append(spec.Edges.Add, petsEdge(int64(4)), groupsEdge(int64(3)))
		spec.Edges.Clear = append(spec.Edges.Clear, &sqlgraph.EdgeSpec{Rel: sqlgraph.M2M, Inverse: true, Table: "group_users",
			Columns: []string{"group_id", "user_id"}, Target: &sqlgraph.EdgeTarget{IDSpec: idSpec(), Nodes: []driver.Value{int64(2)}}})
		var got []any
		spec.ScanValues = func(cols []string) ([]any, error) {
			vs := make([]any, len(cols))
			for i := range vs {
				vs[i] = new(any)
			}
			return vs, nil
		}
		spec.Assign = func(cols []string, values []any) error {
			for i, c := range cols {
				got = append(got, c, *(values[i].(*any)))
			}
			return nil
		}
		err := sqlgraph.UpdateNode(ctx, drv, spec)
		return got, err
	})
	tr.Do("at 1: update missing node", func() (any, error) {
		spec := sqlgraph.NewUpdateSpec("users", userColumns, idSpec())
		spec.Node.ID.Value = int64(99)
		spec.SetField("age", field.TypeInt64, int64(1))
		return nil, sqlgraph.UpdateNode(ctx, drv, spec)
	})

	tr.Do("migrate to 2", func() (any, error) { return migrate(2) })
	reads("at 2")
	userColumns = append(userColumns, "nickname")
	tr.Do("at 2: create with new column", func() (any, error) {
		return create("users", map[string]any{"name": "ariel", "age": int64(1) << 40, "nickname": "a"})
	})
	tr.Do("at 2: update many", func() (any, error) {
		spec := sqlgraph.NewUpdateSpec("users", userColumns, idSpec())
		spec.Predicate = func(s *entsql.Selector) { s.Where(entsql.IsNull(s.C("nickname"))) }
		spec.SetField("nickname", field.TypeString, "n/a")
		spec.AddField("age", field.TypeInt64, int64(10))
		return sqlgraph.UpdateNodes(ctx, drv, spec)
	})
	reads("at 2 with nickname")

	tr.Do("delete nodes", func() (any, error) {
		return sqlgraph.DeleteNodes(ctx, drv, &sqlgraph.DeleteSpec{
			Node:      &sqlgraph.NodeSpec{Table: "users", Columns: userColumns, ID: idSpec()},
			Predicate: func(s *entsql.Selector) { s.Where(entsql.EQ(s.C("name"), "nati")) },
		})
	})
	tr.Do("pets after delete", func() (any, error) { return query(drv, "pets", []string{"id", "name", "owner_id"}, nil) })
	tr.Do("transaction with a failing create", func() (any, error) {
		tx, err := drv.Tx(ctx)
		if err != nil {
			return nil, err
		}
		spec := sqlgraph.NewCreateSpec("pets", idSpec())
		spec.SetField("name", field.TypeString, "ghost")
		spec.SetField("owner_id", field.TypeInt64, int64(99))
		err1 := sqlgraph.CreateNode(ctx, txDriver{tx}, spec)
		n, err2 := sqlgraph.CountNodes(ctx, txDriver{tx}, sqlgraph.NewQuerySpec("pets", []string{"id"}, idSpec()))
		return []any{difftest.ErrText(err1), n, difftest.ErrText(err2)}, tx.Rollback()
	})
	tr.Do("transaction committed", func() (any, error) {
		tx, err := drv.Tx(ctx)
		if err != nil {
			return nil, err
		}
		spec := sqlgraph.NewCreateSpec("pets", idSpec())
		spec.SetField("name", field.TypeString, "fido")
		spec.SetField("owner_id", field.TypeInt64, int64(1))
		if err := sqlgraph.CreateNode(ctx, txDriver{tx}, spec); err != nil {
			tx.Rollback()
			return nil, err
		}
		n, err := sqlgraph.CountNodes(ctx, txDriver{tx}, sqlgraph.NewQuerySpec("pets", []string{"id"}, idSpec()))
		if err != nil {
			tx.Rollback()
			return nil, err
		}
		return n, tx.Commit()
	})
	tr.Do("read-only transaction", func() (any, error) {
		tx, err := drv.BeginTx(ctx, &entsql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		n, err := sqlgraph.CountNodes(ctx, txDriver{tx}, sqlgraph.NewQuerySpec("pets", []string{"id"}, idSpec()))
		_, werr := sqlgraph.DeleteNodes(ctx, txDriver{tx}, &sqlgraph.DeleteSpec{Node: &sqlgraph.NodeSpec{Table: "pets", ID: idSpec()}})
		return []any{n, difftest.ErrText(werr)}, err
	})
	tr.Do("final pets", func() (any, error) { return query(drv, "pets", []string{"id", "name", "owner_id"}, nil) })
	tr.Do("query error", func() (any, error) { return query(drv, "users", []string{"id", "nosuch"}, nil) })
	tr.Do("read after error", func() (any, error) {
		return sqlgraph.CountNodes(ctx, drv, sqlgraph.NewQuerySpec("users", []string{"id"}, idSpec()))
	})
}

// TestDiffPgxStdlib runs the ent workload through pgx stdlib on the primary
// and through pgwait on the primary and the replica, and compares.
func TestDiffPgxStdlib(t *testing.T) {
	require.NoError(t, difftest.Run(t, difftest.Options{Name: "ent"}, entWorkload))
}
