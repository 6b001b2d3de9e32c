package entcompat_test

import (
	"fmt"
	"testing"

	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/sqlgraph"
	"entgo.io/ent/schema/field"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/compattest"
)

// Generated ent clients do their work through sqlgraph: client.User.Create()
// .Save is sqlgraph.CreateNode, Query().All is QueryNodes, Count is
// CountNodes, UpdateOne(u).Save is UpdateNode (in a transaction), Update()
// .Exec is UpdateNodes and Delete().Exec is DeleteNodes. This drives those
// calls as generated code does, without the code generator: each write is
// read back at once, from the replica.
func TestSqlgraphAsGeneratedCode(t *testing.T) {
	drv, table := open(t)
	ctx := compattest.Ctx(t)
	columns := []string{"id", "name", "n"}
	idSpec := sqlgraph.NewFieldSpec("id", field.TypeInt64)

	type node struct {
		ID   int64
		Name string
		N    int64
	}
	query := func(pred func(*entsql.Selector)) []node {
		t.Helper()
		var nodes []node
		spec := sqlgraph.NewQuerySpec(table, columns, idSpec)
		spec.Predicate = pred
		spec.Order = func(s *entsql.Selector) { s.OrderBy("id") }
		spec.ScanValues = func([]string) ([]any, error) {
			return []any{new(entsql.NullInt64), new(entsql.NullString), new(entsql.NullInt64)}, nil
		}
		spec.Assign = func(_ []string, values []any) error {
			nodes = append(nodes, node{
				ID:   values[0].(*entsql.NullInt64).Int64,
				Name: values[1].(*entsql.NullString).String,
				N:    values[2].(*entsql.NullInt64).Int64,
			})
			return nil
		}
		require.NoError(t, sqlgraph.QueryNodes(ctx, drv, spec))
		return nodes
	}
	byID := func(id int64) func(*entsql.Selector) {
		return func(s *entsql.Selector) { s.Where(entsql.EQ(s.C("id"), id)) }
	}

	before := compattest.Stats(t, drv.DB())
	const n = 50
	for i := range n {
		// client.User.Create().SetName(...).SetN(i).Save(ctx)
		create := sqlgraph.NewCreateSpec(table, sqlgraph.NewFieldSpec("id", field.TypeInt64))
		create.SetField("name", field.TypeString, fmt.Sprint("node-", i))
		create.SetField("n", field.TypeInt64, int64(i))
		require.NoError(t, sqlgraph.CreateNode(ctx, drv, create))
		id := create.ID.Value.(int64)

		// client.User.Query().Where(user.ID(id)).All(ctx)
		got := query(byID(id))
		require.Len(t, got, 1, "round %d: created node not visible at once", i)
		require.Equal(t, fmt.Sprint("node-", i), got[0].Name)

		// client.User.UpdateOneID(id).AddN(100).Save(ctx)
		update := sqlgraph.NewUpdateSpec(table, columns, sqlgraph.NewFieldSpec("id", field.TypeInt64))
		update.Node.ID.Value = id
		update.AddField("n", field.TypeInt64, int64(100))
		require.NoError(t, sqlgraph.UpdateNode(ctx, drv, update))
		require.EqualValues(t, i+100, query(byID(id))[0].N, "round %d: update not visible at once", i)
	}

	// client.User.Update().Where(n >= 125).AddN(1000).Exec(ctx)
	bulk := sqlgraph.NewUpdateSpec(table, columns, idSpec)
	bulk.Predicate = func(s *entsql.Selector) { s.Where(entsql.GTE(s.C("n"), 125)) }
	bulk.AddField("n", field.TypeInt64, int64(1000))
	affected, err := sqlgraph.UpdateNodes(ctx, drv, bulk)
	require.NoError(t, err)
	require.Equal(t, 25, affected)
	count, err := sqlgraph.CountNodes(ctx, drv, &sqlgraph.QuerySpec{
		Node:      &sqlgraph.NodeSpec{Table: table, ID: idSpec},
		Predicate: func(s *entsql.Selector) { s.Where(entsql.GTE(s.C("n"), 1125)) },
	})
	require.NoError(t, err)
	require.Equal(t, 25, count, "bulk update not visible at once")

	// client.User.Delete().Where(n >= 1125).Exec(ctx)
	deleted, err := sqlgraph.DeleteNodes(ctx, drv, &sqlgraph.DeleteSpec{
		Node:      &sqlgraph.NodeSpec{Table: table, Columns: columns, ID: idSpec},
		Predicate: func(s *entsql.Selector) { s.Where(entsql.GTE(s.C("n"), 1125)) },
	})
	require.NoError(t, err)
	require.Equal(t, 25, deleted)
	require.Len(t, query(nil), n-25, "delete not visible at once")

	d := compattest.Sub(compattest.Stats(t, drv.DB()), before)
	t.Logf("pgwait stats: %+v", d)
	require.GreaterOrEqual(t, d.Writes, uint64(2*n+2))
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(2*n+2))
	require.Zero(t, d.PrimaryReads)
	require.Zero(t, d.Fallbacks)
}
