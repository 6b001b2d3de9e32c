package classify

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		sql    string
		kind   Kind
		reason string // checked when not empty
	}{
		// Empty texts, blanks, comments and byte order marks.
		{"empty", "", Write, "empty statement"},
		{"blanks", " \t\r\n\f\v", Write, "empty statement"},
		{"only comments", "-- a\n/* b */", Write, "empty statement"},
		{"only semicolons", " ; ;; ", Write, "empty statement"},
		{"byte order mark", "\uFEFFSELECT 1", Read, ""},
		{"byte order mark after comment", "/* c */\uFEFF select 1", Read, ""},
		{"keywords fold case", "sElEcT 1", Read, ""},
		{"line comment ends at CR", "-- x\rSELECT 1", Read, ""},
		{"line comment hides all", "-- SELECT 1", Write, "empty statement"},

		// Unterminated literals and comments.
		{"unterminated string", "SELECT 'abc", Write, "unterminated string"},
		{"unterminated E string", `SELECT E'abc\'`, Write, "unterminated string"},
		{"unterminated dollar quote", "SELECT $x$ abc $y$", Write, "unterminated string"},
		{"unterminated identifier", `SELECT "abc`, Write, "unterminated quoted identifier"},
		{"unterminated comment", "SELECT 1 /* abc", Write, "unterminated comment"},
		{"unterminated nested comment", "SELECT 1 /* a /* b */", Write, "unterminated comment"},
		{"comment opener reuses no star", "SELECT 1 /*/", Write, "unterminated comment"},

		// Strings and identifiers hide keywords and semicolons.
		{"doubled quote", "SELECT 'a'';DELETE FROM t;'", Read, ""},
		{"backslash in standard string", `SELECT '\'; SELECT 2`, Read, ""},
		{"backslash escape in E string", `SELECT e'\';DELETE FROM t;'`, Read, ""},
		{"doubled quote in E string", `SELECT E'a'';DELETE'`, Read, ""},
		{"E prefix only when adjacent", `SELECT e '\'`, Read, ""},
		{"identifier ending in e", `SELECT date'2024-01-01', type'\'`, Read, ""},
		{"dollar quote with tag", "SELECT $a$ $b$ ; DELETE $a$", Read, ""},
		{"dollar quote empty tag", "SELECT $$ ' $$, 'x'", Read, ""},
		{"dollar in identifier", "SELECT a$$b, c$d$ FROM t; DELETE FROM t", Write, "DELETE statement"},
		{"positional parameters", "SELECT $1, $2 FROM t WHERE a = $3", Read, ""},
		{"lone dollar", "SELECT $ FROM t", Read, ""},
		{"dollar tag cannot start with digit", "SELECT $1$ FOR UPDATE", Write, "FOR UPDATE clause"},
		{"quoted identifier with doubled quote", `SELECT "a""; DELETE" FROM t`, Read, ""},
		{"unicode string", `SELECT U&'d\0061t\+000061'`, Read, ""},
		{"unicode identifier", `SELECT U&"d\0061t" FROM t`, Read, ""},
		{"bit strings", "SELECT B'101', x'1f', N'n'", Read, ""},
		{"comment inside operator", "SELECT 1 --; DELETE\n- 1", Read, ""},
		{"nested comment", "/* a /* b */ ; DELETE */ SELECT 1", Read, ""},

		// Query shapes.
		{"parenthesised select", "((SELECT 1))", Read, ""},
		{"parenthesised values", "(VALUES (1))", Read, ""},
		{"parenthesised garbage", "(1)", Write, "unrecognised statement"},
		{"table", "TABLE t", Read, ""},
		{"show", "SHOW search_path", Read, ""},
		{"values with nextval", "VALUES (nextval('s'))", Write, "calls nextval()"},

		// Locking clauses at any depth.
		{"for update", "SELECT 1 FROM t FOR UPDATE", Write, "FOR UPDATE clause"},
		{"for update lower case", "select 1 from t for update", Write, "FOR UPDATE clause"},
		{"for with comment", "SELECT 1 FROM t FOR/**/UPDATE", Write, "FOR UPDATE clause"},
		{"for update in subquery", "SELECT * FROM (SELECT * FROM t FOR UPDATE) s", Write, "FOR UPDATE clause"},
		{"for update in CTE", "WITH s AS (SELECT * FROM t FOR SHARE) SELECT * FROM s", Write, "FOR SHARE clause"},
		{"number glued to for", "SELECT 1FOR UPDATE", Write, "FOR UPDATE clause"},
		{"for in substring", "SELECT substring(a FROM 2 FOR 3) FROM t", Read, ""},
		{"qualified column named for", "SELECT t.for FROM t", Read, ""},
		{"alias named for", "SELECT 1 AS for, 2", Read, ""},
		{"quoted for", `SELECT "for" FROM t`, Read, ""},
		{"identifier for_update", "SELECT for_update FROM t", Read, ""},

		// Data-modifying WITH and SELECT INTO.
		{"with insert", "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", Write, "data-modifying WITH"},
		{"with merge", "WITH m AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *) SELECT 1", Write, "data-modifying WITH"},
		{"with delete main", "WITH x AS (SELECT 1) DELETE FROM t", Write, "data-modifying WITH"},
		{"with nested with", "WITH a AS (WITH b AS (SELECT 1) UPDATE t SET x = 1 RETURNING 1) SELECT 1", Write, "data-modifying WITH"},
		{"DML reason beats lock", "WITH a AS (SELECT * FROM t FOR UPDATE) DELETE FROM t", Write, "data-modifying WITH"},
		{"select into", "SELECT * INTO t2 FROM t", Write, "SELECT INTO"},
		{"select into in union", "SELECT 1 UNION SELECT 2 INTO t2", Write, "SELECT INTO"},
		{"qualified into", "SELECT s.into FROM s", Read, ""},
		{"update column without with", "SELECT update FROM t", Read, ""},

		// Function calls.
		{"qualified call", "SELECT pg_catalog.nextval('s')", Write, "calls nextval()"},
		{"upper-case call", "SELECT NEXTVAL('s')", Write, "calls nextval()"},
		{"call with comment", "SELECT nextval /* x */ ('s')", Write, "calls nextval()"},
		{"call with newline", "SELECT nextval\n('s')", Write, "calls nextval()"},
		{"quoted call", `SELECT "nextval"('s')`, Write, "calls nextval()"},
		{"quoted schema and call", `SELECT "pg_catalog"."nextval"('s')`, Write, "calls nextval()"},
		{"quoted call is case sensitive", `SELECT "Nextval"('s')`, Read, ""},
		{"unicode identifier call", `SELECT U&"nextval"('s')`, Write, `calls a U&"..." function`},
		{"not a call", "SELECT nextval FROM t", Read, ""},
		{"name in string", "SELECT 'nextval(1)'", Read, ""},
		{"prefix wildcard", "SELECT pg_advisory_unlock_all()", Write, "calls pg_advisory_*()"},
		{"middle wildcard", "SELECT pg_copy_logical_replication_slot('a', 'b')", Write, "calls pg_copy_*_replication_slot()"},
		{"wildcard needs its suffix", "SELECT pg_copy_thing()", Read, ""},
		{"user function", "SELECT my_func(1)", Read, ""},
		{"function named like a prefix", "SELECT pg_advisory()", Read, ""},
		{"empty quoted name", `SELECT ""()`, Read, ""},
		{"very long name", "SELECT " + strings.Repeat("a", 100) + "()", Read, ""},
		{"call in select into", "SELECT nextval('s') INTO t", Write, "SELECT INTO"},

		// EXPLAIN.
		{"explain", "EXPLAIN DELETE FROM t", Read, ""},
		{"explain analyze read", "EXPLAIN ANALYZE SELECT 1", Read, ""},
		{"explain analyse", "EXPLAIN ANALYSE DELETE FROM t", Write, "EXPLAIN ANALYZE"},
		{"explain options analyze", "EXPLAIN (FORMAT JSON, ANALYZE) UPDATE t SET a = 1", Write, "EXPLAIN ANALYZE"},
		{"explain analyze true", "EXPLAIN (ANALYZE true) INSERT INTO t VALUES (1)", Write, "EXPLAIN ANALYZE"},
		{"explain analyze on", "EXPLAIN (ANALYZE on) INSERT INTO t VALUES (1)", Write, "EXPLAIN ANALYZE"},
		{"explain analyze off", "EXPLAIN (ANALYZE off) INSERT INTO t VALUES (1)", Read, ""},
		{"explain analyze 0", "EXPLAIN (ANALYZE 0) INSERT INTO t VALUES (1)", Read, ""},
		{"explain analyze string false", "EXPLAIN (ANALYZE 'false') INSERT INTO t VALUES (1)", Read, ""},
		{"explain analyze off then on", "EXPLAIN (ANALYZE off, ANALYZE) INSERT INTO t VALUES (1)", Write, "EXPLAIN ANALYZE"},
		{"explain analyze nextval", "EXPLAIN ANALYZE SELECT nextval('s')", Write, "calls nextval()"},
		{"explain analyze create as", "EXPLAIN ANALYZE CREATE TABLE t2 AS SELECT 1", Write, "EXPLAIN ANALYZE"},
		{"explain analyze parenthesised", "EXPLAIN ANALYZE (SELECT 1)", Read, ""},
		{"explain analyze begin", "EXPLAIN ANALYZE BEGIN", Write, "EXPLAIN ANALYZE"},
		{"explain explain", "EXPLAIN ANALYZE EXPLAIN SELECT 1", Write, "EXPLAIN ANALYZE"},
		{"explain execute", "EXPLAIN (COSTS OFF) EXECUTE p(1)", Write, "EXECUTE statement"},
		{"explain parenthesised query", "EXPLAIN (SELECT 1)", Read, ""},
		{"explain parenthesised nested", "EXPLAIN ((SELECT 1) UNION (SELECT 2))", Read, ""},
		{"explain options then parenthesised", "EXPLAIN (ANALYZE) (SELECT 1 FOR UPDATE)", Write, "FOR UPDATE clause"},
		{"explain empty options", "EXPLAIN () SELECT 1", Read, ""},
		{"explain nothing", "EXPLAIN", Write, "unrecognised statement"},
		{"explain then semicolon", "EXPLAIN (ANALYZE; SELECT 1", Write, "unrecognised statement"},

		// SET, RESET and transaction control.
		{"set", "SET x = 1", Session, ""},
		{"set session", "SET SESSION x = 1", Session, ""},
		{"set session authorization", "SET SESSION AUTHORIZATION app", Session, ""},
		{"reset", "RESET x", Session, ""},
		{"reset all", "reset all;", Session, ""},
		{"set local", "set local x = 1", Write, "SET LOCAL"},
		{"bare set", "SET", Session, ""},
		{"begin", "begin;", Transaction, ""},
		{"begin transaction", "BEGIN TRANSACTION READ ONLY", Transaction, ""},
		{"start without transaction", "START x", Write, "unrecognised statement"},
		{"prepare", "PREPARE p AS SELECT 1", Write, "PREPARE statement"},
		{"rollback to", "ROLLBACK TO sp", Transaction, ""},

		// Several statements.
		{"two reads", "SELECT 1; SELECT 2", Read, ""},
		{"read then write", "SELECT 1; INSERT INTO t VALUES (1)", Write, "INSERT statement"},
		{"first write reason wins", "UPDATE t SET a = 1; DELETE FROM t", Write, "UPDATE statement"},
		{"write reason beats several", "SET x = 1; DELETE FROM t", Write, "DELETE statement"},
		{"two sets", "SET a = 1; SET b = 2", Write, "several statements"},
		{"read then commit", "SELECT 1; COMMIT", Write, "several statements"},
		{"empty statements ignored", ";;SELECT 1;;", Read, ""},
		{"comment after last statement", "SELECT 1; -- done", Read, ""},
		{"set with empty statements", "; SET a = 1 ;", Session, ""},
		{"unterminated in second", "SELECT 1; SELECT 'x", Write, "unterminated string"},

		// Other commands.
		{"garbage", "hello", Write, "unrecognised statement"},
		{"number", "42", Write, "unrecognised statement"},
		{"string", "'SELECT 1'", Write, "unrecognised statement"},
		{"quoted select", `"select" 1`, Write, "unrecognised statement"},
		{"wait for lsn", "WAIT FOR LSN '0/3000060'", Write, "WAIT statement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.sql)
			if got.Kind != tt.kind {
				t.Errorf("Classify(%q).Kind = %v (%s), want %v", tt.sql, got.Kind, got.Reason, tt.kind)
			}
			if tt.reason != "" && got.Reason != tt.reason {
				t.Errorf("Classify(%q).Reason = %q, want %q", tt.sql, got.Reason, tt.reason)
			}
			checkInvariants(t, tt.sql, got)
		})
	}
}

func TestQuery(t *testing.T) {
	tests := []struct {
		sql   string
		query bool
	}{
		{"SELECT 1", true},
		{"SELECT 1 FOR UPDATE", true},
		{"SELECT nextval('s')", true},
		{"VALUES (1)", true},
		{"TABLE t", true},
		{"SHOW x", true},
		{"(SELECT 1)", true},
		{"EXPLAIN DELETE FROM t", true},
		{"EXPLAIN ANALYZE SELECT 1 FOR UPDATE", true},
		{"EXPLAIN ANALYZE DELETE FROM t", false},
		{"WITH d AS (DELETE FROM t) SELECT 1", false},
		{"SELECT * INTO t2 FROM t", false},
		{"SELECT 1; SELECT nextval('s')", true},
		{"SELECT 1; DELETE FROM t", false},
		{"DELETE FROM t", false},
		{"SET x = 1", false},
		{"BEGIN", false},
		{"", false},
		{"SELECT 'x", false},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql).Query; got != tt.query {
			t.Errorf("Classify(%q).Query = %v, want %v", tt.sql, got, tt.query)
		}
	}
}

func TestHint(t *testing.T) {
	tests := []struct {
		sql  string
		hint Hint
	}{
		{"SELECT 1", NoHint},
		{"/* pgwait:replica */ SELECT 1", Replica},
		{"/*pgwait:primary*/SELECT 1", Primary},
		{"/*  PgWait  :  RePlIcA  */ SELECT 1", Replica},
		{"/*\tpgwait:replica\n*/ SELECT 1", Replica},
		{"-- pgwait:primary\nSELECT 1", Primary},
		{"--pgwait:replica\r\nSELECT 1", Replica},
		{"SELECT 1 -- pgwait:replica", Replica},
		{"SELECT /* pgwait:replica */ 1", Replica},
		{"SELECT 1; /* pgwait:primary */ SELECT 2", Primary},
		{"/* pgwait:primary */ /* pgwait:replica */ SELECT 1", Primary},
		{"/* pgwait:replica */ -- pgwait:primary\nSELECT 1", Primary},
		{"SELECT '/* pgwait:replica */'", NoHint},
		{"SELECT $$ -- pgwait:replica $$", NoHint},
		{`SELECT "/* pgwait:replica */"`, NoHint},
		{"/* pgwait:replica, please */ SELECT 1", NoHint},
		{"/* pgwait:replicas */ SELECT 1", NoHint},
		{"/* pgwait replica */ SELECT 1", NoHint},
		{"/* pgwait: */ SELECT 1", NoHint},
		{"/* pg_wait:replica */ SELECT 1", NoHint},
		{"/* note: pgwait:replica */ SELECT 1", NoHint},
		{"/* outer /* pgwait:replica */ */ SELECT 1", NoHint},
		{"/* pgwait:replica", NoHint}, // never closed: not a comment body
		{"/* pgwait:primary */", Primary},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql).Hint; got != tt.hint {
			t.Errorf("Classify(%q).Hint = %d, want %d", tt.sql, got, tt.hint)
		}
	}
}

// TestDeniedFunctions calls every deny-listed function, in the forms a client
// may write it.
func TestDeniedFunctions(t *testing.T) {
	for _, pattern := range deniedFunctions {
		name := strings.Replace(pattern, "*", "x", 1)
		reason := "calls " + pattern + "()"
		for _, sql := range []string{
			"SELECT " + name + "(1)",
			"select " + strings.ToUpper(name) + " (1)",
			"SELECT pg_catalog." + name + "(1)",
			`SELECT "` + name + `"(1)`,
			"SELECT * FROM t WHERE a = (SELECT " + name + "/* c */(1))",
		} {
			got := Classify(sql)
			if got.Kind != Write || got.Reason != reason || !got.Query {
				t.Errorf("Classify(%q) = %+v, want a Write query calling %s", sql, got, pattern)
			}
		}
		if got := Classify("SELECT " + name + " FROM t"); got.Kind != Read {
			t.Errorf("column %s: Kind = %v, want read", name, got.Kind)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		Write: "write", Read: "read", Session: "session", Transaction: "transaction", 9: "Kind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// checkInvariants checks what holds for every Result.
func checkInvariants(t testing.TB, sql string, r Result) {
	t.Helper()
	if (r.Kind == Write) != (r.Reason != "") {
		t.Errorf("Classify(%q) = %+v: Reason must be set exactly for Write", sql, r)
	}
	if r.Query && (r.Kind == Session || r.Kind == Transaction) {
		t.Errorf("Classify(%q) = %+v: a %v statement is not a query", sql, r, r.Kind)
	}
	if r.Kind == Read && !r.Query {
		t.Errorf("Classify(%q) = %+v: a Read must be a query", sql, r)
	}
	if r.Kind > Transaction || r.Hint > Replica {
		t.Errorf("Classify(%q) = %+v: out of range", sql, r)
	}
}

func TestZeroAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	for _, sql := range benchmarkStatements {
		if allocs := testing.AllocsPerRun(100, func() { Classify(sql.sql) }); allocs != 0 {
			t.Errorf("%s: %v allocations per call", sql.name, allocs)
		}
	}
}

func TestStatements(t *testing.T) {
	tests := []struct {
		sql  string
		want int
	}{
		{"SELECT 1", 1},
		{"SELECT 1;", 1},
		{"SELECT 1;;  ; ", 1},
		{"CREATE TABLE t (a int); INSERT INTO t VALUES (1)", 2},
		{"SELECT ';'; SELECT $$;$$ -- ;\n", 2},
		{"/* ; */ SELECT 1", 1},
		{"", 0},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql).Statements; got != tt.want {
			t.Errorf("Classify(%q).Statements = %d, want %d", tt.sql, got, tt.want)
		}
	}
}

func TestDML(t *testing.T) {
	tests := []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", true},
		{"SELECT nextval('s')", true},
		{"SELECT * FROM t FOR UPDATE", true},
		{"INSERT INTO t VALUES (1) RETURNING id", true},
		{"update t set a = 1", true},
		{"DELETE FROM t", true},
		{"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", true},
		{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", true},
		{"INSERT INTO t VALUES (1); UPDATE t SET a = 2", true},
		{"VACUUM t", false},
		{"CREATE INDEX CONCURRENTLY i ON t (a)", false},
		{"CREATE TABLE t (a int)", false},
		{"BEGIN", false},
		{"SET search_path = x", false},
		{"INSERT INTO t VALUES (1); VACUUM t", false},
		{"", false},
		{"INSERT INTO t VALUES ('unterminated", false},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql).DML; got != tt.want {
			t.Errorf("Classify(%q).DML = %v, want %v", tt.sql, got, tt.want)
		}
	}
}

func TestPins(t *testing.T) {
	tests := []struct {
		sql  string
		pins bool
	}{
		{"SELECT 1", false},
		{"SELECT set_config('app.tenant', $1, false)", true},
		{"SELECT SET_CONFIG('app.tenant', 'a', false)", true},
		{`SELECT "set_config"('app.tenant', 'a', false)`, true},
		{`SELECT U&"set_config"('a', 'b', false)`, true},
		{"WITH t AS (SELECT set_config('a', 'b', false)) SELECT * FROM t", true},
		{"SELECT current_setting('app.tenant')", false},
		{"SELECT setseed(0.5)", true},
		{"SELECT pg_advisory_lock(1)", true},
		{"SELECT pg_try_advisory_lock_shared(1)", true},
		{"SELECT pg_advisory_xact_lock(1)", false},
		{"CREATE TEMP TABLE t (a int)", true},
		{"create temporary table t (a int)", true},
		{"CREATE GLOBAL TEMPORARY TABLE t (a int)", true},
		{"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", true},
		{"CREATE TEMP SEQUENCE s", true},
		{"CREATE TABLE t (a int)", false},
		{"CREATE UNLOGGED TABLE t (a int)", false},
		{"SELECT * INTO TEMP t FROM x", true},
		{"PREPARE p AS SELECT 1", true},
		{"PREPARE TRANSACTION 'x'", false},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", true},
		{"LISTEN chan", true},
		{"LOAD 'auto_explain'", true},
		{"INSERT INTO t VALUES (set_config('a', 'b', false))", true},
		{"UPDATE t SET a = 1", false},
		{"SET app.tenant = 'a'", false},
		{"SELECT 1; SELECT set_config('a', 'b', false)", true},
		{"SELECT 'set_config(' || x FROM t", false},
	}
	for _, tt := range tests {
		if got := Classify(tt.sql).Pins; got != tt.pins {
			t.Errorf("Classify(%q).Pins = %v, want %v", tt.sql, got, tt.pins)
		}
	}
}
