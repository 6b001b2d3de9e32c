// Package conformance is pgwait's differential test suite: the same table of
// database/sql operations runs through pgx stdlib, straight to the primary,
// and through pgwait over a primary and a replica (reads really served by
// the replica), and the outcomes are compared value by value and error by
// error (SQLSTATE and message), in each of pgx's query exec modes
// (default_query_exec_mode, the same for both drivers). Any difference
// fails, except the deliberate ones listed in Deliberate and DeliberateIn,
// each with its reason.
//
// The package holds only tests and the list; it needs PostgreSQL 19 (see
// internal/pgtest) and skips without it, unless PGWAIT_REQUIRE_PG=1.
package conformance

// Deliberate lists the cases whose outcome through pgwait differs from pgx
// stdlib's on purpose, by case name, with the reason. The suite checks that
// every case named here still exists and still differs.
var Deliberate = map[string]string{
	"prepared statement after DDL": "pgx stdlib keeps failing with 0A000 " +
		"(cached plan must not change result type) for a Stmt prepared before the table " +
		"changed; pgwait prepares it again and runs it, since nothing was executed.",
	"cached query after DDL": "pgx stdlib reports 0A000 once per connection and cached " +
		"statement after a schema change (it invalidates the statement for the next use); " +
		"pgwait prepares it again and runs it at once, since nothing was executed: on a " +
		"replica the change arrives by replay, with no client-side event to act on.",
	"DISCARD ALL and DEALLOCATE ALL from the application": "pgx stdlib's statement " +
		"cache does not notice DISCARD ALL or DEALLOCATE ALL sent as SQL and fails with 26000 " +
		"(prepared statement does not exist) on each cached statement once; pgwait forgets " +
		"its statements when it runs them, and prepares again.",
	"wrong argument count": "Exec without arguments of a statement with parameters: " +
		"pgx stdlib sends it through the simple protocol and the server answers 42P02 " +
		"(there is no parameter $1); pgwait prepares it, to read the WAL position in the " +
		"same round trip, and reports pgx's own count error (expected 1 arguments, got 0).",
	"COPY FROM STDIN": "pgx stdlib sends it and waits for COPY data database/sql " +
		"cannot send, until the context ends (and the connection with it); pgwait refuses it " +
		"at once with an error that says to use pgx's CopyFrom through sql.Conn.Raw.",
	"cancelled context mid-row": "pgx stdlib closes the connection when a context " +
		"ends while rows are read, and the next statement on that sql.Conn fails with " +
		"driver.ErrBadConn; pgwait loses only the server connection that was reading (here " +
		"the replica's) and the next statement runs.",
	"pg_prepared_statements after Prepare": "reads go to a replica, whose session is " +
		"not the primary's: session views (pg_prepared_statements, pg_cursors) show the " +
		"replica session. Read them with pgwait.OnPrimary.",
}

// DeliberateIn lists, by exec mode, how the deliberate differences of
// Deliberate change in that mode: a case with a reason differs in that
// mode for that reason (in addition to, or instead of, Deliberate's); a case
// with the empty reason does not differ in that mode.
var DeliberateIn = map[string]map[string]string{
	"cache_describe": outsideCacheStatement(nil),
	"describe_exec":  outsideCacheStatement(nil),
	"exec": outsideCacheStatement(map[string]string{
		"wrong argument count": "Exec without arguments of a statement with parameters: " +
			"pgx stdlib sends it through the simple protocol and the server answers 42P02 " +
			"(there is no parameter $1); pgwait sends it as the mode says, unnamed through the " +
			"extended protocol, to wait or read the WAL position in the same round trip, and the " +
			"server answers 08P01 (bind message supplies 0 parameters).",
	}),
	"simple_protocol": outsideCacheStatement(map[string]string{
		"wrong argument count": "Exec without arguments of a statement with parameters, " +
			"routed to a replica as a read: pgx stdlib's Exec sends the text as it is and the server " +
			"answers 42P02 (there is no parameter $1); pgwait serves reads through pgx's Query, " +
			"whose sanitizer refuses it (insufficient arguments). On the primary pgwait sends it as " +
			"it is, as pgx stdlib does.",
	}),
}

// outsideCacheStatement returns the differences of a mode other than
// cache_statement: extra, and none of those that come from cache_statement's
// named statements. pgx stdlib has no prepared statement to lose to DISCARD
// ALL or DEALLOCATE ALL, and pgwait retries no statement that went stale
// after DDL either (in cache_describe both report the server's 08P01, a
// cached description that no longer fits, once).
func outsideCacheStatement(extra map[string]string) map[string]string {
	m := map[string]string{
		"DISCARD ALL and DEALLOCATE ALL from the application": "",
		"cached query after DDL":                              "",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// deliberate returns the reason why a case differs on purpose in an exec
// mode, if it does.
func deliberate(mode, name string) (string, bool) {
	if reason, ok := DeliberateIn[mode][name]; ok {
		return reason, reason != ""
	}
	reason, ok := Deliberate[name]
	return reason, ok
}
