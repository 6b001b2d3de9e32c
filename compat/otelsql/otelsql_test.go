package otelsqlcompat_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/XSAM/otelsql"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pgwait/pgwait/compat/internal/compattest"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
)

func TestMain(m *testing.M) { os.Exit(compattest.Main(m)) }

// tracing returns a tracer provider that records every span it ends.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, sr
}

// spans counts the ended spans by name.
func spans(sr *tracetest.SpanRecorder) map[string]int {
	n := map[string]int{}
	for _, s := range sr.Ended() {
		n[s.Name()]++
	}
	return n
}

func createTable(t *testing.T, db *sql.DB) string {
	t.Helper()
	table := compattest.Name("otel")
	_, err := db.ExecContext(compattest.Ctx(t), "CREATE TABLE "+table+" (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL)")
	require.NoError(t, err)
	return table
}

// writeThenRead inserts then selects at once, compattest.Loops times, and
// requires every read fresh and served by a server in recovery.
func writeThenRead(ctx context.Context, t *testing.T, db *sql.DB, table string) {
	t.Helper()
	stale := 0
	for i := range compattest.Loops {
		name := fmt.Sprint("otel-", i)
		var id int64
		require.NoError(t, db.QueryRowContext(ctx, "INSERT INTO "+table+" (name) VALUES ($1) RETURNING id", name).Scan(&id))
		var inRecovery bool
		err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery() FROM "+table+" WHERE id = $1", id).Scan(&inRecovery)
		if errors.Is(err, sql.ErrNoRows) {
			stale++
			continue
		}
		require.NoError(t, err)
		require.True(t, inRecovery, "the read ran on the primary")
	}
	require.Zero(t, stale, "stale reads")
}

func TestReplicaLags(t *testing.T) { compattest.RequireReplicaLags(t) }

// otelsql.OpenDB over a pgwait connector: spans for every call, read-your-
// writes on the replica, and the connector's Stats.
func TestOpenDB(t *testing.T) {
	tp, sr := tracing(t)
	connector := compattest.Connector(t)
	db := otelsql.OpenDB(connector, otelsql.WithTracerProvider(tp))
	t.Cleanup(func() { db.Close() })
	ctx := compattest.Ctx(t)
	table := createTable(t, db)

	before := connector.Stats()
	n0 := spans(sr)
	writeThenRead(ctx, t, db, table)
	compattest.RequireReplicaRYW(t, compattest.Sub(connector.Stats(), before), compattest.Loops)

	n := spans(sr)
	t.Logf("spans: %v", n)
	require.GreaterOrEqual(t, n["sql.conn.query"]-n0["sql.conn.query"], 2*compattest.Loops, "query spans")
	require.GreaterOrEqual(t, n["sql.rows"]-n0["sql.rows"], 2*compattest.Loops, "rows spans")

	// The query text is on the spans.
	found := false
	for _, s := range sr.Ended() {
		for _, kv := range s.Attributes() {
			if strings.HasPrefix(kv.Value.AsString(), "SELECT pg_is_in_recovery() FROM "+table) {
				found = true
			}
		}
	}
	require.True(t, found, "no span carries the query text")
}

// otelsql.Open by driver name, transactions included: a read-write
// transaction on the primary, its commit read from the replica at once; a
// read-only one on the replica.
func TestOpenTx(t *testing.T) {
	tp, sr := tracing(t)
	db, err := otelsql.Open("pgwait", compattest.DSN(t), otelsql.WithTracerProvider(tp))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx := compattest.Ctx(t)
	table := createTable(t, db)
	for i := range 20 {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		var id int64
		require.NoError(t, tx.QueryRowContext(ctx, "INSERT INTO "+table+" (name) VALUES ($1) RETURNING id", fmt.Sprint("tx-", i)).Scan(&id))
		var inRecovery bool
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT pg_is_in_recovery() FROM "+table+" WHERE id = $1", id).Scan(&inRecovery))
		require.False(t, inRecovery, "a read-write transaction ran on the replica")
		require.NoError(t, tx.Commit())

		require.NoError(t, db.QueryRowContext(ctx, "SELECT pg_is_in_recovery() FROM "+table+" WHERE id = $1", id).Scan(&inRecovery),
			"round %d: committed row not visible at once", i)
		require.True(t, inRecovery, "the read ran on the primary")

		ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		require.NoError(t, err)
		require.NoError(t, ro.QueryRowContext(ctx, "SELECT pg_is_in_recovery() FROM "+table+" WHERE id = $1", id).Scan(&inRecovery))
		require.True(t, inRecovery, "a read-only transaction ran on the primary")
		require.NoError(t, ro.Commit())
	}
	n := spans(sr)
	t.Logf("spans: %v", n)
	require.GreaterOrEqual(t, n["sql.conn.begin_tx"], 40)
	require.GreaterOrEqual(t, n["sql.tx.commit"], 40)
}

// WithSQLCommenter appends the trace context to every statement as a
// comment (query /*traceparent='...'*/): pgwait still routes and waits
// correctly, and the comment reaches the replica.
func TestSQLCommenter(t *testing.T) {
	tp, _ := tracing(t)
	connector := compattest.Connector(t)
	db := otelsql.OpenDB(connector, otelsql.WithTracerProvider(tp),
		otelsql.WithSQLCommenter(true), otelsql.WithTextMapPropagator(propagation.TraceContext{}))
	t.Cleanup(func() { db.Close() })
	ctx, span := tp.Tracer("compat").Start(compattest.Ctx(t), "request")
	defer span.End()
	table := createTable(t, db)

	before := connector.Stats()
	const n = 50
	for i := range n {
		var id int64
		require.NoError(t, db.QueryRowContext(ctx, "INSERT INTO "+table+" (name) VALUES ($1) RETURNING id", fmt.Sprint("c-", i)).Scan(&id))
		var query string
		var inRecovery bool
		require.NoError(t, db.QueryRowContext(ctx, "SELECT current_query(), pg_is_in_recovery() FROM "+table+" WHERE id = $1", id).Scan(&query, &inRecovery),
			"round %d: row not visible at once", i)
		require.True(t, inRecovery, "a commented read ran on the primary")
		require.Contains(t, query, "traceparent='00-"+span.SpanContext().TraceID().String())
	}
	compattest.RequireReplicaRYW(t, compattest.Sub(connector.Stats(), before), n)
}

// sql.Conn.Raw hands over otelsql's connection, whose Raw method returns
// pgwait's *driver.Conn, and through it each side's *pgx.Conn.
func TestRaw(t *testing.T) {
	tp, _ := tracing(t)
	connector := compattest.Connector(t)
	db := otelsql.OpenDB(connector, otelsql.WithTracerProvider(tp))
	t.Cleanup(func() { db.Close() })
	ctx := compattest.Ctx(t)

	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Raw(func(dc any) error {
		// Not directly: otelsql wraps the connection ...
		_, direct := dc.(*pgwaitdriver.Conn)
		require.False(t, direct, "otelsql now hands *driver.Conn to Raw directly: update compat/README.md")
		// ... and unwraps it on request.
		w, ok := dc.(interface{ Raw() sqldriver.Conn })
		require.True(t, ok, "otelsql's connection (%T) has no Raw method", dc)
		c, ok := w.Raw().(*pgwaitdriver.Conn)
		require.True(t, ok, "otelsql's Raw returned %T, not *driver.Conn", w.Raw())

		for _, side := range []struct {
			name       string
			get        func(context.Context) (*pgx.Conn, error)
			inRecovery bool
		}{{"Primary", c.Primary, false}, {"Replica", c.Replica, true}} {
			p, err := side.get(ctx)
			require.NoError(t, err)
			var inRecovery bool
			require.NoError(t, p.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
			require.Equal(t, side.inRecovery, inRecovery, "%s() returned the wrong server", side.name)
		}
		return nil
	}))

	// driver.StatsOf unwraps otelsql's connection through its Raw method.
	st, err := pgwaitdriver.StatsOf(ctx, db)
	require.NoError(t, err)
	require.Equal(t, connector.Stats().Writes, st.Writes)

	// So do ReplicasOf and ConnectorOf.
	rs, err := pgwaitdriver.ReplicasOf(ctx, db)
	require.NoError(t, err)
	require.Equal(t, connector.Replicas()[0].Addr, rs[0].Addr)
	got, err := pgwaitdriver.ConnectorOf(ctx, db)
	require.NoError(t, err)
	require.Same(t, connector, got)
}
