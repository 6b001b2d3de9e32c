package conformance

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// cluster is the primary + replica the suite runs on (nil without
// PostgreSQL 19: the tests skip).
var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	c, stop := pgtest.Shared(m, pgtest.Options{})
	cluster = c
	code := m.Run()
	stop()
	os.Exit(code)
}

// modes are pgx's query exec modes, as default_query_exec_mode spells
// them; the table runs in each, pgx stdlib configured with the same mode.
var modes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// handles opens pgx stdlib on the primary and pgwait on the primary and the
// replica, both in the exec mode given, and, with withSchema, creates the
// shared schema through pgwait (so that pgwait's reads wait for it).
func handles(t *testing.T, mode string, withSchema bool) (std, pw *sql.DB) {
	t.Helper()
	c := pgtest.Need(t, cluster)
	std, err := sql.Open("pgx", c.PrimaryDSN()+" default_query_exec_mode="+mode)
	require.NoError(t, err)
	t.Cleanup(func() { std.Close() })
	cfg, err := pgx.ParseConfig(cluster.ReplicaDSN(0))
	require.NoError(t, err)
	dsn := cluster.PrimaryDSN() + " default_query_exec_mode=" + mode + " pgwait_replicas=" + net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)) + " pgwait_wait_timeout=10s pgwait_on_timeout=error"
	pw, err = sql.Open("pgwait", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { pw.Close() })
	if withSchema {
		_, err = pw.Exec(schema)
		require.NoError(t, err)
	}
	// Each case starts on a connection of its own: session state a case
	// leaves (LISTEN pins a pgwait connection to the primary) stays with it.
	std.SetMaxIdleConns(0)
	pw.SetMaxIdleConns(0)
	return std, pw
}

const schema = `
DROP SCHEMA IF EXISTS conf CASCADE;
CREATE SCHEMA conf;
CREATE TYPE conf.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN conf.posint AS int CHECK (VALUE > 0);
CREATE TYPE conf.pair AS (a int, b text);
CREATE TABLE conf.big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 200000) g;
CREATE TABLE conf.cols (
	t text, vc varchar(255), bc char(10), vb varbit(50), i int NOT NULL DEFAULT 0,
	n numeric(12,3), n2 numeric, b bytea, j json, jb jsonb, ts timestamptz
);
`

// env is one side of a case: a database/sql handle, one pooled connection
// of it, and the case's own table name.
type env struct {
	ctx  context.Context
	db   *sql.DB
	conn *sql.Conn
	tbl  string
}

// rowsOut is a query's outcome: column metadata and values.
type rowsOut struct {
	Cols []string
	Rows []string
}

// tableWord is the placeholder of a case's own table in its SQL.
var tableWord = regexp.MustCompile(`\bT\b`)

func (e *env) sql(q string) string { return tableWord.ReplaceAllLiteralString(q, e.tbl) }

func (e *env) query(q string, args ...any) (any, error) {
	q = e.sql(q)
	rows, err := e.conn.QueryContext(e.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collect(rows)
}

func collect(rows *sql.Rows) (rowsOut, error) {
	var out rowsOut
	types, err := rows.ColumnTypes()
	if err != nil {
		return out, err
	}
	for _, ct := range types {
		l, lok := ct.Length()
		p, s, dok := ct.DecimalSize()
		nullable, nok := ct.Nullable()
		out.Cols = append(out.Cols, fmt.Sprintf("%s %s len=%d,%t dec=%d,%d,%t null=%t,%t scan=%v",
			ct.Name(), ct.DatabaseTypeName(), l, lok, p, s, dok, nullable, nok, ct.ScanType()))
	}
	for rows.Next() {
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return out, err
		}
		out.Rows = append(out.Rows, fmt.Sprintf("%#v", vals))
	}
	return out, rows.Err()
}

func (e *env) exec(q string, args ...any) (any, error) {
	q = e.sql(q)
	res, err := e.conn.ExecContext(e.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	return fmt.Sprintf("rows affected %d (%v)", n, err), nil
}

// scan runs a one-row query and scans it into dest, returning what dest
// points to.
func (e *env) scan(dest any, q string, args ...any) (any, error) {
	if err := e.conn.QueryRowContext(e.ctx, q, args...).Scan(dest); err != nil {
		return nil, err
	}
	return fmt.Sprintf("%#v", reflect.ValueOf(dest).Elem().Interface()), nil
}

// steps runs several steps and collects each outcome, errors included, so
// that a sequence compares as a whole.
func steps(fs ...func() (any, error)) (any, error) {
	var out []string
	for _, f := range fs {
		v, err := f()
		out = append(out, fmt.Sprintf("%v | %s", v, errText(err)))
	}
	return out, nil
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return "SQLSTATE " + pgErr.Code + ": " + pgErr.Message
	}
	return err.Error()
}

// normalize hides what legitimately differs between the two runs: the
// case's table name, statement names, backend process ids.
var stmtNames = regexp.MustCompile(`(stmt|stmtcache|pgwait)_[0-9a-f]{16,}`)

func normalize(e *env, s string) string {
	s = strings.ReplaceAll(s, e.tbl, "T")
	s = strings.ReplaceAll(s, strings.TrimPrefix(e.tbl, "conf."), "T")
	return stmtNames.ReplaceAllString(s, "STMT")
}

type testCase struct {
	name string
	// setup runs first, through the same driver, outside the comparison.
	setup string
	run   func(e *env) (any, error)
	// replica is set when pgwait must serve at least one read of the case on
	// the replica.
	replica bool
	// shared is set for cases that only read and leave no session state:
	// they run one after another on one connection per driver (each text
	// still prepared on first use, and a repeated one found cached), which
	// keeps the table fast enough to run in every exec mode.
	shared bool
}

func q(sql string, args ...any) func(e *env) (any, error) {
	return func(e *env) (any, error) { return e.query(sql, args...) }
}

// literal is a read of a literal of each type family, without arguments.
func literals() []testCase {
	exprs := []string{
		"123.456::numeric(10,3)", "'NaN'::numeric", "'Infinity'::numeric", "'-1e-30'::numeric", "12345678901234567890.123456789::numeric",
		"1.5::float4", "'NaN'::float8", "'Infinity'::float8", "'-Infinity'::float4", "1e308::float8",
		"1::int2", "2147483647::int4", "-9223372036854775808::int8",
		"'text'::text", "'vc'::varchar(10)", "'c'::char(5)", "'ünï'::text", "''::text",
		"'\\x00ff10'::bytea", "''::bytea", "true", "false",
		"'2024-02-29'::date", "'infinity'::date", "'-infinity'::timestamp", "'4713-01-01 BC'::date",
		"'12:34:56.789'::time", "'12:34:56+05:30'::timetz", "'2024-02-03 04:05:06.123456'::timestamp",
		"'2024-02-03 04:05:06+02'::timestamptz", "'infinity'::timestamptz", "interval '1 year 2 months 3 days 04:05:06.7'", "interval '-1 day'",
		"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", `'{"a": [1, 2, {"b": null}]}'::json`, `'{"b": 2, "a": 1}'::jsonb`, "'null'::jsonb",
		"ARRAY[1,2,NULL]::int[]", "ARRAY['a','b c','\"']::text[]", "'{{1,2},{3,4}}'::int[]", "ARRAY[1.5,NULL]::numeric[]", "ARRAY[true,false]",
		"ARRAY['2024-01-01'::date]", "ARRAY['2024-01-01 00:00:00+00'::timestamptz]", "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
		"ARRAY['{\"a\":1}'::jsonb]", "ARRAY['\\x01'::bytea]", "'{}'::int[]", "ARRAY[1.5::float8, 'NaN']",
		"int4range(1, 10)", "'[2024-01-01,2024-02-01)'::daterange", "'(,5]'::numrange", "'empty'::int4range", "tstzrange('2024-01-01', NULL)",
		"'{[1,3), [5,7)}'::int4multirange",
		"'192.168.0.1/24'::inet", "'10.0.0.0/8'::cidr", "'::1'::inet", "'08:00:2b:01:02:03'::macaddr", "'08:00:2b:01:02:03:04:05'::macaddr8",
		"12.34::money", "'happy'::conf.mood", "ARRAY['sad','ok']::conf.mood[]", "5::conf.posint", "ROW(1, 'x')::conf.pair",
		"ARRAY[ROW(1, 'x')::conf.pair]", "B'1011'::bit(4)", "B'10'::varbit", "'(1,2)'::point", "'<(0,0),1>'::circle",
		"42::oid", "'pg_class'::regclass", "'a fat cat'::tsvector", "'<a>1</a>'::xml", "'1 day'::interval * 1.5",
		"NULL::int", "NULL::text", "NULL::numeric", "NULL::bytea", "NULL::timestamptz", "NULL::jsonb", "NULL::int[]", "NULL::conf.mood",
		"NULL::conf.pair", "NULL::uuid", "NULL::inet", "NULL::int4range", "NULL::bool", "NULL::float8", "NULL::date", "NULL::interval", "NULL",
	}
	var cases []testCase
	for _, x := range exprs {
		cases = append(cases, testCase{name: "literal " + x, run: q("SELECT " + x + " AS v"), replica: true})
	}
	return cases
}

// parameters sends Go values as arguments and reads them back.
func parameters() []testCase {
	ts := time.Date(2024, 2, 3, 4, 5, 6, 123456000, time.FixedZone("X", 5400))
	params := []struct {
		cast string
		v    any
	}{
		{"numeric", "1.10"}, {"numeric", 1.5}, {"numeric", int64(-7)}, {"float8", 1.0 / 3}, {"float4", float32(2.5)},
		{"int8", int64(1 << 62)}, {"int2", 7}, {"text", "héllo"}, {"varchar", ""}, {"bytea", []byte{0, 1, 255}},
		{"bytea", []byte{}}, {"bool", true}, {"date", ts}, {"timestamp", ts}, {"timestamptz", ts}, {"interval", 90 * time.Minute},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, {"json", []byte(`{"a":1}`)}, {"jsonb", `{"a":1}`}, {"jsonb", map[string]any{"k": []any{1.0, "x"}}},
		{"int[]", []int64{1, 2, 3}}, {"text[]", []string{"a", "b,c"}}, {"float8[]", []float64{1.5}}, {"inet", net.ParseIP("10.1.2.3")},
		{"int", nil}, {"text", sql.NullString{}}, {"text", sql.NullString{String: "s", Valid: true}}, {"int8", sql.NullInt64{Int64: 3, Valid: true}},
		{"conf.mood", "ok"}, {"conf.posint", 3}, {"conf.posint", 0}, {"int4", "not a number"}, {"int4", int64(1) << 40},
		{"text", valuer{s: "via valuer"}}, {"text", valuer{null: true}}, {"int4range", "[1,5)"}, {"money", "1.23"},
	}
	var cases []testCase
	for _, p := range params {
		cases = append(cases, testCase{
			name: fmt.Sprintf("parameter %s %T %v", p.cast, p.v, p.v), run: q("SELECT $1::"+p.cast+" AS v", p.v), replica: true,
		})
	}
	return cases
}

// valuer is a driver.Valuer.
type valuer struct {
	s    string
	null bool
}

func (v valuer) Value() (sqldriver.Value, error) {
	if v.null {
		return nil, nil
	}
	return v.s, nil
}

// scanner is a sql.Scanner that records what the driver handed it.
type scanner struct{ got string }

func (s *scanner) Scan(src any) error {
	s.got = fmt.Sprintf("%T %v", src, src)
	if b, ok := src.([]byte); ok {
		s.got = fmt.Sprintf("%T %s", src, b)
	}
	return nil
}

func scans() []testCase {
	cases := []testCase{
		{name: "json into []byte", run: func(e *env) (any, error) { return e.scan(new([]byte), `SELECT '{"foo": "bar"}'::json`) }, replica: true},
		{name: "jsonb into []byte", run: func(e *env) (any, error) { return e.scan(new([]byte), `SELECT '{"foo": "bar"}'::jsonb`) }, replica: true},
		{name: "jsonb into string", run: func(e *env) (any, error) { return e.scan(new(string), `SELECT '{"foo": "bar"}'::jsonb`) }, replica: true},
		{name: "numeric into float64", run: func(e *env) (any, error) { return e.scan(new(float64), `SELECT 1.25::numeric`) }, replica: true},
		{name: "numeric into string", run: func(e *env) (any, error) { return e.scan(new(string), `SELECT 1.250::numeric`) }, replica: true},
		{name: "int into string", run: func(e *env) (any, error) { return e.scan(new(string), `SELECT 7`) }, replica: true},
		{name: "timestamptz into time", run: func(e *env) (any, error) {
			return e.scan(new(time.Time), `SELECT '2024-02-03 04:05:06+02'::timestamptz`)
		}, replica: true},
		{name: "null into string", run: func(e *env) (any, error) { return e.scan(new(string), `SELECT NULL::text`) }, replica: true},
		{name: "no rows", run: func(e *env) (any, error) { return e.scan(new(int), `SELECT 1 WHERE false`) }, replica: true},
		{name: "uuid into []byte", run: func(e *env) (any, error) {
			return e.scan(new([]byte), `SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid`)
		}, replica: true},
		{name: "text[] into string", run: func(e *env) (any, error) { return e.scan(new(string), `SELECT ARRAY['a','b']`) }, replica: true},
	}
	for _, x := range []string{"1", "'x'::text", "'\\x01'::bytea", "now() > '2000-01-01'", "'2024-01-01'::date", "1.5::numeric", "'{\"a\":1}'::jsonb", "NULL::int", "ARRAY[1]"} {
		cases = append(cases, testCase{name: "scanner " + x, run: func(e *env) (any, error) {
			var s scanner
			if err := e.conn.QueryRowContext(e.ctx, "SELECT "+x).Scan(&s); err != nil {
				return nil, err
			}
			return s.got, nil
		}, replica: true})
	}
	return cases
}

func statements() []testCase {
	return []testCase{
		{name: "column types of a table", setup: "CREATE TABLE T (LIKE conf.cols)", run: q("SELECT * FROM T"), replica: true},
		{name: "column types with NOT NULL and expressions", run: q("SELECT t, i, i + 1 AS j, n, count(*) OVER () FROM conf.cols"), replica: true},
		{name: "rows affected", setup: "CREATE TABLE T (id int PRIMARY KEY, v text)", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) { return e.exec("INSERT INTO T VALUES (1, 'a'), (2, 'b'), (3, 'c')") },
				func() (any, error) { return e.exec("UPDATE T SET v = $1 WHERE id > $2", "z", 1) },
				func() (any, error) { return e.exec("DELETE FROM T WHERE id = $1", 99) },
				func() (any, error) { return e.exec("SELECT * FROM T") },
				func() (any, error) { return e.query("INSERT INTO T VALUES (4, 'd') RETURNING *") },
				func() (any, error) { return e.exec("INSERT INTO T VALUES (4, 'd')") },
				func() (any, error) { return e.query("SELECT * FROM T ORDER BY id") },
			)
		}, replica: true},
		{name: "sql.Named and pgx.NamedArgs", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) { return e.query("SELECT $1::int + $2::int", sql.Named("a", 1), sql.Named("b", 2)) },
				func() (any, error) { return e.query("SELECT @a::int + @b::int", pgx.NamedArgs{"a": 1, "b": 2}) },
				func() (any, error) { return e.query("SELECT @a::int", pgx.NamedArgs{}) },
			)
		}, replica: true},
		{name: "wrong argument count", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) { return e.query("SELECT $1::int", 1, 2) },
				func() (any, error) { return e.query("SELECT $1::int, $2::int", 1) },
				func() (any, error) { return e.exec("SELECT $1::int") },
			)
		}},
		{name: "statements after errors", setup: "CREATE TABLE T (id int PRIMARY KEY)", run: func(e *env) (any, error) {
			var fs []func() (any, error)
			for range 3 {
				fs = append(fs,
					func() (any, error) { return e.query("SELECT $1::int", "x") },
					func() (any, error) { return e.query("SELECT nosuch FROM T") },
					func() (any, error) { return e.exec("INSERT INTO T VALUES ($1)", 1) },
					func() (any, error) { return e.query("SELECT count(*) FROM T WHERE id = $1", 1) },
					func() (any, error) { return e.query("SELECT 1/0") },
					func() (any, error) { return e.query("SELECT count(*) FROM T") },
				)
			}
			return steps(fs...)
		}, replica: true},
		{name: "DISCARD ALL and DEALLOCATE ALL from the application", setup: "CREATE TABLE T (id int)", run: func(e *env) (any, error) {
			read := func() (any, error) { return e.query("SELECT count(*) FROM T WHERE id > $1", 0) }
			write := func() (any, error) { return e.exec("INSERT INTO T VALUES ($1)", 1) }
			return steps(read, write, read,
				func() (any, error) { return e.exec("DISCARD ALL") }, read, write, read,
				func() (any, error) { return e.exec("DEALLOCATE ALL") }, read, write, read,
				func() (any, error) { return e.query("DEALLOCATE ALL") }, read, write, read,
			)
		}, replica: true},
		{name: "multi-statement scripts", setup: "CREATE TABLE T (id int)", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) {
					return e.exec("INSERT INTO T VALUES (1); INSERT INTO T VALUES (2); UPDATE T SET id = id")
				},
				func() (any, error) { return e.exec("SELECT 1; SELECT 2") },
				func() (any, error) { return e.exec("INSERT INTO T VALUES (3); SELECT 1/0; INSERT INTO T VALUES (4)") },
				func() (any, error) { return e.query("SELECT count(*) FROM T") },
				func() (any, error) { return e.exec("INSERT INTO T VALUES ($1); SELECT 1", 5) },
			)
		}, replica: true},
		{name: "empty queries", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) { return e.exec("") },
				func() (any, error) { return e.exec(";") },
				func() (any, error) { return e.exec("  -- nothing\n") },
			)
		}},
		{name: "very long query", run: func(e *env) (any, error) {
			var b strings.Builder
			b.WriteString("SELECT 0")
			for i := range 20000 {
				fmt.Fprintf(&b, " + %d", i)
			}
			return e.query(b.String() + " AS v, '" + strings.Repeat("y", 1<<20) + "' = '' AS w")
		}},
		{name: "SET RESET and SET LOCAL", run: func(e *env) (any, error) {
			show := func() (any, error) {
				return e.query("SELECT current_setting('application_name'), current_setting('TimeZone'), '2024-01-01 12:00:00+00'::timestamptz::text")
			}
			return steps(show,
				func() (any, error) { return e.exec("SET TimeZone = 'Asia/Kolkata'") }, show,
				func() (any, error) { return e.exec("SET application_name = 'conf'") }, show,
				func() (any, error) { return e.exec("RESET TimeZone") }, show,
				func() (any, error) { return e.exec("SET LOCAL TimeZone = 'UTC'") }, show,
				func() (any, error) { return e.exec("RESET ALL") }, show,
			)
		}, replica: true},
		{name: "prepared statements", setup: "CREATE TABLE T (id int, v text)", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) {
					st, err := e.conn.PrepareContext(e.ctx, e.sql("INSERT INTO T VALUES ($1, $2)"))
					if err != nil {
						return nil, err
					}
					defer st.Close()
					r, err := st.ExecContext(e.ctx, 1, "a")
					if err != nil {
						return nil, err
					}
					return r.RowsAffected()
				},
				func() (any, error) {
					st, err := e.conn.PrepareContext(e.ctx, e.sql("SELECT * FROM T WHERE id = $1"))
					if err != nil {
						return nil, err
					}
					defer st.Close()
					rows, err := st.QueryContext(e.ctx, 1)
					if err != nil {
						return nil, err
					}
					defer rows.Close()
					return collect(rows)
				},
				func() (any, error) { return e.conn.PrepareContext(e.ctx, "SELEC 1") },
				func() (any, error) { return e.conn.PrepareContext(e.ctx, e.sql("SELECT * FROM T WHERE nosuch = 1")) },
				func() (any, error) {
					st, err := e.conn.PrepareContext(e.ctx, "SELECT $1::int + $2::int")
					if err != nil {
						return nil, err
					}
					defer st.Close()
					return st.QueryContext(e.ctx, 1)
				},
			)
		}, replica: true},
		{name: "prepared statement after DDL", setup: "CREATE TABLE T (id int, v text); INSERT INTO T VALUES (1, 'a')", run: func(e *env) (any, error) {
			st, err := e.conn.PrepareContext(e.ctx, e.sql("SELECT * FROM T"))
			if err != nil {
				return nil, err
			}
			defer st.Close()
			read := func() (any, error) {
				rows, err := st.QueryContext(e.ctx)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				return collect(rows)
			}
			return steps(read, func() (any, error) { return e.exec("ALTER TABLE T ADD COLUMN w int DEFAULT 7") }, read, read)
		}, replica: true},
		{name: "cached query after DDL", setup: "CREATE TABLE T (id int, v text); INSERT INTO T VALUES (1, 'a')", run: func(e *env) (any, error) {
			read := func() (any, error) { return e.query("SELECT * FROM T WHERE id = $1", 1) }
			return steps(read, read, func() (any, error) { return e.exec("ALTER TABLE T ADD COLUMN w int DEFAULT 7") }, read, read,
				func() (any, error) { return e.exec("ALTER TABLE T ALTER COLUMN id TYPE bigint") }, read,
				func() (any, error) { return e.exec("INSERT INTO T VALUES ($1, $2, $3)", 2, "b", 3) }, read)
		}, replica: true},
		{name: "pg_prepared_statements after Prepare", run: func(e *env) (any, error) {
			st, err := e.conn.PrepareContext(e.ctx, "SELECT 42")
			if err != nil {
				return nil, err
			}
			defer st.Close()
			return e.query("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT 42'")
		}},
		{name: "transaction life cycle", setup: "CREATE TABLE T (a varchar NOT NULL)", run: func(e *env) (any, error) {
			tx := func(commit bool) func() (any, error) {
				return func() (any, error) {
					tx, err := e.conn.BeginTx(e.ctx, nil)
					if err != nil {
						return nil, err
					}
					if _, err := tx.ExecContext(e.ctx, "INSERT INTO "+e.tbl+" VALUES ('hi')"); err != nil {
						return nil, err
					}
					if commit {
						return nil, tx.Commit()
					}
					return nil, tx.Rollback()
				}
			}
			count := func() (any, error) { return e.query("SELECT count(*) FROM T") }
			failed := func() (any, error) {
				tx, err := e.conn.BeginTx(e.ctx, nil)
				if err != nil {
					return nil, err
				}
				_, err1 := tx.ExecContext(e.ctx, "SELECT 1/0")
				_, err2 := tx.ExecContext(e.ctx, "SELECT 1")
				return errText(err1) + " / " + errText(err2), tx.Commit()
			}
			ro := func() (any, error) {
				tx, err := e.conn.BeginTx(e.ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					return nil, err
				}
				defer tx.Rollback()
				var n int
				err = tx.QueryRowContext(e.ctx, "SELECT count(*) FROM "+e.tbl).Scan(&n)
				_, werr := tx.ExecContext(e.ctx, "INSERT INTO "+e.tbl+" VALUES ('x')")
				return fmt.Sprint(n, errText(werr)), err
			}
			return steps(tx(false), count, tx(true), count, failed, count, ro, count)
		}, replica: true},
		{name: "LISTEN", run: func(e *env) (any, error) {
			return steps(
				func() (any, error) { return e.exec("LISTEN conf_channel") },
				func() (any, error) { return e.query("SELECT pg_listening_channels()") },
				func() (any, error) { return e.exec("UNLISTEN *") },
			)
		}},
		{name: "COPY TO STDOUT", setup: "CREATE TABLE T (id int)", run: copyCase("COPY T TO STDOUT")},
		{name: "COPY FROM STDIN", setup: "CREATE TABLE T (id int)", run: copyCase("COPY T FROM STDIN")},
		{name: "cancelled context mid-row", run: func(e *env) (any, error) {
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			rows, err := e.conn.QueryContext(ctx, "SELECT id FROM conf.big")
			if err != nil {
				return nil, err
			}
			n := 0
			for rows.Next() {
				n++
				if n == 10 {
					cancel()
				}
			}
			err = rows.Err()
			rows.Close()
			more, err2 := e.query("SELECT 1")
			return fmt.Sprintf("stopped early %t, %s, then %v %s", n < 200000, errText(err), more, errText(err2)), nil
		}, replica: true},
		{name: "large result set", run: func(e *env) (any, error) {
			rows, err := e.conn.QueryContext(e.ctx, "SELECT id, pad FROM conf.big")
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var n, sum int64
			for rows.Next() {
				var id int64
				var pad string
				if err := rows.Scan(&id, &pad); err != nil {
					return nil, err
				}
				n++
				sum += id
			}
			return fmt.Sprint(n, sum), rows.Err()
		}, replica: true},
	}
}

// copyCase runs a COPY through Exec with a short deadline: database/sql has
// no COPY, and the server waits for, or sends, COPY data.
func copyCase(copySQL string) func(e *env) (any, error) {
	return func(e *env) (any, error) {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		_, err := e.conn.ExecContext(ctx, e.sql(copySQL))
		return nil, err
	}
}

func TestDifferential(t *testing.T) {
	var all []testCase
	for _, reads := range [][]testCase{literals(), parameters(), scans()} {
		for _, tc := range reads {
			tc.shared = true
			all = append(all, tc)
		}
	}
	all = append(all, statements()...)
	names := map[string]bool{}
	for _, tc := range all {
		require.False(t, names[tc.name], "duplicate case %q", tc.name)
		names[tc.name] = true
	}
	for name := range Deliberate {
		require.True(t, names[name], "Deliberate names a case that does not exist: %q", name)
	}
	for mode, cases := range DeliberateIn {
		require.Contains(t, modes, mode, "DeliberateIn names a mode that does not exist")
		for name := range cases {
			require.True(t, names[name], "DeliberateIn[%s] names a case that does not exist: %q", mode, name)
		}
	}
	for i, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			differential(t, mode, i == 0, all)
		})
	}
}

// differential runs the table in one exec mode.
func differential(t *testing.T, mode string, withSchema bool, all []testCase) {
	std, pw := handles(t, mode, withSchema)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	defer func() { t.Logf("%d cases in %s", len(all), time.Since(start).Round(time.Millisecond)) }()
	shared := map[*sql.DB]*sql.Conn{}
	defer func() {
		for _, conn := range shared {
			conn.Close()
		}
	}()
	for i, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			run := func(db *sql.DB, side string) (string, uint64) {
				t.Helper()
				conn := shared[db]
				if conn == nil || !tc.shared {
					var err error
					conn, err = db.Conn(ctx)
					require.NoError(t, err)
					if tc.shared {
						shared[db] = conn
					} else {
						defer conn.Close()
					}
				}
				e := &env{ctx: ctx, db: db, conn: conn, tbl: fmt.Sprintf("conf.c%d_%s_%s", i, strings.ReplaceAll(mode, "_", ""), side)}
				if tc.setup != "" {
					_, err := conn.ExecContext(ctx, e.sql(tc.setup))
					require.NoError(t, err)
				}
				before := replicaReads(t, db)
				v, err := tc.run(e)
				reads := replicaReads(t, db) - before
				if err != nil {
					reads = 1 // a read that failed is not counted
				}
				return normalize(e, fmt.Sprintf("%v | %s", v, errText(err))), reads
			}
			want, _ := run(std, "std")
			got, onReplica := run(pw, "pw")
			if tc.replica {
				require.NotZero(t, onReplica, "pgwait served no read of the case on the replica")
			}
			if reason, ok := deliberate(mode, tc.name); ok {
				require.NotEqual(t, want, got, "listed as a deliberate difference in %s (%s), but the outcomes are equal", mode, reason)
				t.Logf("deliberate difference: %s\npgx stdlib: %s\npgwait:     %s", reason, want, got)
				return
			}
			require.Equal(t, want, got, "pgx stdlib (expected) and pgwait (actual) differ")
		})
	}
}

// replicaReads returns pgwait's count of replica reads, or 0 for pgx stdlib.
func replicaReads(t *testing.T, db *sql.DB) uint64 {
	t.Helper()
	if _, ok := db.Driver().(pgwaitdriver.Driver); !ok {
		return 0
	}
	st, err := pgwaitdriver.StatsOf(context.Background(), db)
	require.NoError(t, err)
	return st.ReplicaReads
}
