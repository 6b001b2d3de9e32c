// Package classify decides where a SQL text may run: on a read replica (a hot
// standby) or only on the primary.
//
// The policy is "read only when proven": a statement is Read only when its
// shape (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN, a parenthesised SELECT)
// is read-only and nothing in it can write — no locking clause, no
// data-modifying WITH, no SELECT INTO, no call to a function known to write or
// to depend on the primary connection's session state. Everything the
// classifier does not recognise is a Write. Functions it does not know (user
// functions) are assumed not to write: if one does, the replica refuses it with
// SQLSTATE 25006 (read_only_sql_transaction) and the driver re-runs the
// statement on the primary. The replica's own read-only refusal is the safety
// net; this package only has to be conservative about what cannot fail there
// loudly (session state, advisory locks, sequences).
//
// Classify lexes the text once, byte by byte, the way PostgreSQL's scanner
// does with standard_conforming_strings on (the default since 9.1, the only
// setting since 19, and what pgx requires for simple-protocol queries):
// keywords inside strings, quoted identifiers and comments never count. A
// string, quoted identifier or comment left open makes the text a Write. It
// allocates nothing.
//
// # Routing hints
//
// A comment whose whole body is "pgwait:primary" or "pgwait:replica" (case
// insensitive, blanks allowed around the words and the colon), as a block
// comment /* pgwait:replica */ or a line comment -- pgwait:primary, sets
// Result.Hint. The comment may stand anywhere in the text — before the first
// keyword, after it (where ORM comment hooks put it), or at the end (where
// sqlcommenter-style tools put theirs) — but not inside a string literal. If
// both hints appear, Primary wins.
package classify

import "strconv"

// Kind says where a statement may run.
type Kind uint8

const (
	// Write is the zero value: the statement modifies data, or may; it runs on
	// the primary only.
	Write Kind = iota
	// Read means the statement is proven read-only: safe on a hot standby.
	Read
	// Session is a session-level SET, SET SESSION, RESET or RESET ALL (not SET
	// LOCAL, SET TRANSACTION or SET CONSTRAINTS): it changes per-connection
	// state.
	Session
	// Transaction is transaction control: BEGIN, START TRANSACTION, COMMIT,
	// END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, ROLLBACK TO, PREPARE
	// TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED.
	Transaction
)

// String returns the lower-case name of the kind: "write", "read", "session"
// or "transaction".
func (k Kind) String() string {
	switch k {
	case Write:
		return "write"
	case Read:
		return "read"
	case Session:
		return "session"
	case Transaction:
		return "transaction"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Hint is a routing override written in a comment (see the package
// documentation for where it may stand).
type Hint uint8

const (
	// NoHint means no pgwait comment was found.
	NoHint Hint = iota
	// Primary comes from /* pgwait:primary */: run on the primary.
	Primary
	// Replica comes from /* pgwait:replica */: run on a replica if the
	// statement is Read or Query.
	Replica
)

// Result is what Classify learned about one SQL text.
type Result struct {
	// Kind says where the text may run.
	Kind Kind
	// Hint is the routing override found in a comment anywhere in the text
	// (outside string literals); Primary wins over Replica.
	Hint Hint
	// Query reports that every statement is query-shaped (SELECT, WITH,
	// VALUES, TABLE, SHOW, EXPLAIN without ANALYZE, a parenthesised SELECT, or
	// EXPLAIN ANALYZE of one of these) with no data-modifying WITH and no
	// SELECT INTO: only a locking clause or a function call can make it write.
	// A caller may force such a statement onto a replica, which refuses a real
	// write with SQLSTATE 25006; never a non-query.
	Query bool
	// Reason says briefly why a text is a Write, such as "INSERT statement",
	// "FOR UPDATE clause", "calls nextval()" or "several statements". It is
	// empty for the other kinds.
	Reason string
	// DML reports that every statement is a query or an INSERT, UPDATE,
	// DELETE or MERGE (under WITH too): statements that may run inside a
	// transaction block, unlike VACUUM or CREATE INDEX CONCURRENTLY.
	DML bool
	// Statements counts the statements in the text (empty ones between
	// semicolons aside). A script of several statements cannot be prepared:
	// it runs through the simple protocol, without arguments.
	Statements int
	// Pins reports that the text may leave state in the session of the
	// server that runs it which no other server's session has: temporary
	// tables, sequences and views (CREATE TEMP ..., SELECT INTO), SQL-level
	// prepared statements (PREPARE), cursors (DECLARE), LISTEN, LOAD,
	// session advisory locks, and values set by set_config() or setseed().
	// A connection that ran it must keep running its statements on that
	// server. Plain SET and RESET are Session statements instead: they can
	// be replayed on every server.
	Pins bool
}

// Reasons shared by several code paths.
const (
	reasonEmpty        = "empty statement"
	reasonUnrecognised = "unrecognised statement"
	reasonSeveral      = "several statements"
	reasonExplain      = "EXPLAIN ANALYZE"
	reasonDataWith     = "data-modifying WITH"
	reasonSelectInto   = "SELECT INTO"
	reasonEscapedCall  = "calls a U&\"...\" function"
)

// Classify reports whether sql — one statement or several separated by
// semicolons — may run on a replica. A text with several statements is Read
// only if each is; one containing a Session or Transaction statement is a
// Write ("several statements"). An empty text, or one of only comments, is a
// Write.
func Classify(sql string) Result {
	lx := lexer{src: sql}
	var (
		res     = Result{Kind: Read, Query: true, DML: true}
		count   int
		special bool // a Session or Transaction statement was seen
	)
	for {
		st, more := classifyStatement(&lx)
		if !st.empty {
			count++
			res.Query = res.Query && st.query
			res.Pins = res.Pins || st.pins
			res.DML = res.DML && (st.query || isDMLReason(st.reason))
			switch st.kind {
			case Write:
				if res.Kind != Write {
					res.Kind, res.Reason = Write, st.reason
				}
			case Session, Transaction:
				special = true
				if res.Kind == Read {
					res.Kind = st.kind
				}
			}
		}
		if !more {
			break
		}
	}
	res.Hint = lx.hint
	res.Statements = count
	switch {
	case lx.unterminated != "":
		res.Kind, res.Reason, res.Query, res.DML = Write, lx.unterminated, false, false
	case count == 0:
		res.Kind, res.Reason, res.Query, res.DML = Write, reasonEmpty, false, false
	case count > 1 && special && res.Kind != Write:
		res.Kind, res.Reason = Write, reasonSeveral
	}
	if res.Kind != Write {
		res.Reason = ""
	}
	return res
}

// isDMLReason reports the reasons of data-modifying statements that may run
// in a transaction block.
func isDMLReason(reason string) bool {
	switch reason {
	case "INSERT statement", "UPDATE statement", "DELETE statement", "MERGE statement", reasonDataWith:
		return true
	}
	return false
}

// statement is the classification of one statement.
type statement struct {
	empty  bool
	kind   Kind
	query  bool
	reason string
	pins   bool // see Result.Pins
}

// classifyStatement consumes one statement, up to and including its ';', and
// reports whether more text follows.
func classifyStatement(lx *lexer) (statement, bool) {
	first := lx.next()
	switch {
	case first.kind == tokEOF:
		return statement{empty: true}, false
	case first.isPunct(';'):
		return statement{empty: true}, true
	}
	return classifyFrom(lx, first, false)
}

// classifyFrom classifies the statement whose first token is first.
// explained is set for the statement inside an EXPLAIN.
func classifyFrom(lx *lexer, first token, explained bool) (statement, bool) {
	if first.isPunct('(') {
		t := first
		for t.isPunct('(') {
			t = lx.next()
		}
		if isQueryKeyword(t) {
			return scanQuery(lx, t)
		}
		return writeStatement(lx, t, reasonUnrecognised)
	}
	if first.kind != tokWord {
		return writeStatement(lx, first, reasonUnrecognised)
	}
	if isQueryKeyword(first) || first.is("show") {
		return scanQuery(lx, first)
	}
	if first.is("explain") && !explained {
		return classifyExplain(lx)
	}
	if explained && first.is("execute") {
		// The prepared statement lives on one connection only.
		return writeStatement(lx, first, "EXECUTE statement")
	}
	return classifyCommand(lx, first)
}

// isQueryKeyword reports the keywords that start a query.
func isQueryKeyword(t token) bool {
	return t.is("select") || t.is("with") || t.is("values") || t.is("table")
}

// classifyCommand classifies a statement that is not query-shaped.
func classifyCommand(lx *lexer, first token) (statement, bool) {
	var kind Kind
	reason := ""
	switch {
	case first.is("set"):
		kind = Session
		switch second := lx.next(); {
		case second.is("local"):
			kind, reason = Write, "SET LOCAL"
		case second.is("transaction"):
			kind, reason = Write, "SET TRANSACTION"
		case second.is("constraints"):
			kind, reason = Write, "SET CONSTRAINTS"
		default:
			return finish(lx, second, statement{kind: Session})
		}
	case first.is("reset"):
		kind = Session
	case first.is("begin"), first.is("commit"), first.is("end"), first.is("rollback"),
		first.is("abort"), first.is("savepoint"), first.is("release"):
		kind = Transaction
	case first.is("start"), first.is("prepare"):
		second := lx.next()
		if second.is("transaction") {
			kind = Transaction
			break
		}
		reason = reasonUnrecognised
		if first.is("prepare") {
			reason = "PREPARE statement"
		}
		return finish(lx, second, statement{kind: Write, reason: reason, pins: first.is("prepare")})
	case first.is("create"):
		// CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} ...
		t := lx.next()
		for range 4 {
			if t.is("temp") || t.is("temporary") {
				return finish(lx, t, statement{kind: Write, reason: "CREATE TEMP statement", pins: true})
			}
			if !(t.is("or") || t.is("replace") || t.is("global") || t.is("local") || t.is("unlogged")) {
				break
			}
			t = lx.next()
		}
		return finish(lx, t, statement{kind: Write, reason: commandReason(first.text)})
	case first.is("declare"), first.is("listen"), first.is("load"):
		return finish(lx, lx.next(), statement{kind: Write, reason: commandReason(first.text), pins: true})
	default:
		return writeStatement(lx, first, commandReason(first.text))
	}
	return finish(lx, lx.next(), statement{kind: kind, reason: reason})
}

// writeStatement skips the rest of a Write statement starting at t.
func writeStatement(lx *lexer, t token, reason string) (statement, bool) {
	return finish(lx, t, statement{kind: Write, reason: reason})
}

// finish skips tokens from t to the end of the statement and returns st,
// noting calls to functions that pin the session on the way.
func finish(lx *lexer, t token, st statement) (statement, bool) {
	var prev token
	for {
		switch {
		case t.kind == tokEOF:
			return st, false
		case t.isPunct(';'):
			return st, true
		case t.isPunct('('):
			st.pins = st.pins || pinningCall(prev)
		}
		prev, t = t, lx.next()
	}
}

// classifyExplain classifies what follows the EXPLAIN keyword. Without
// ANALYZE nothing is executed: any explainable statement is a Read. With
// ANALYZE the statement runs and is classified as such.
func classifyExplain(lx *lexer) (statement, bool) {
	analyze := false
	t := lx.next()
	if t.isPunct('(') {
		t = lx.next()
		if isQueryKeyword(t) || t.isPunct('(') {
			// EXPLAIN (SELECT ...): no options, a parenthesised query.
			return finish(lx, t, statement{kind: Read, query: true})
		}
		// EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ... ; ANALYZE may take a
		// boolean: false, off or 0 turn it off.
		afterAnalyze := false
		for ; t.kind != tokEOF && !t.isPunct(';') && !t.isPunct(')'); t = lx.next() {
			if afterAnalyze && isFalse(t) {
				analyze = false
			}
			afterAnalyze = t.is("analyze") || t.is("analyse")
			if afterAnalyze {
				analyze = true
			}
		}
		if t.isPunct(')') {
			t = lx.next()
		}
	} else {
		for t.is("analyze") || t.is("analyse") || t.is("verbose") {
			analyze = analyze || !t.is("verbose")
			t = lx.next()
		}
	}
	switch {
	case t.kind == tokEOF || t.isPunct(';'):
		return finish(lx, t, statement{kind: Write, reason: reasonUnrecognised})
	case t.is("execute"):
		return classifyFrom(lx, t, true)
	case !analyze:
		return finish(lx, t, statement{kind: Read, query: true})
	}
	st, more := classifyFrom(lx, t, true)
	if st.kind != Write {
		if st.kind != Read {
			st = statement{kind: Write, reason: reasonExplain}
		}
		return st, more
	}
	if !st.query {
		st.reason = reasonExplain
	}
	return st, more
}

// isFalse reports an EXPLAIN option value that turns the option off.
func isFalse(t token) bool {
	switch t.kind {
	case tokWord, tokString:
		return equalFold(t.text, "false") || equalFold(t.text, "off")
	case tokNumber:
		return t.text == "0"
	}
	return false
}

// scanQuery classifies a query-shaped statement whose first keyword is first
// by looking at every token up to the end of the statement for what can make
// a query write: a locking clause, a data-modifying WITH, SELECT INTO and
// calls to deny-listed functions. Nesting depth does not matter.
func scanQuery(lx *lexer, first token) (statement, bool) {
	st := statement{kind: Read, query: true}
	var (
		prev     = first // the token before t
		sawWith  = first.is("with")
		afterFor = false // prev is the keyword FOR
		label    = false // prev is AS or '.': a word now is a name, not a keyword
	)
	for {
		t := lx.next()
		reason, notQuery := "", false
		kw := kwNone
		switch t.kind {
		case tokEOF:
			return st, false
		case tokPunct:
			switch t.text[0] {
			case ';':
				return st, true
			case '(':
				reason = calledFunction(prev)
				st.pins = st.pins || pinningCall(prev)
			}
		case tokWord:
			if !label {
				kw = keywordOf(t.text)
			}
			switch {
			case afterFor && lockingReasons[kw] != "":
				reason = lockingReasons[kw]
			case kw == kwInto:
				// SELECT INTO TEMP makes a temporary table; a plain one
				// pins too, which costs little for so rare a statement.
				reason, notQuery = reasonSelectInto, true
				st.pins = true
			case sawWith && kw >= kwInsert:
				reason, notQuery = reasonDataWith, true
			}
			sawWith = sawWith || kw == kwWith
		}
		// A query that may write keeps the first reason found; one that is no
		// longer a query reports why.
		switch {
		case notQuery && st.query:
			st = statement{kind: Write, reason: reason, pins: st.pins}
		case reason != "" && st.kind == Read:
			st.kind, st.reason = Write, reason
		}
		afterFor = kw == kwFor
		label = kw == kwAs || t.isPunct('.')
		prev = t
	}
}

// calledFunction returns the Reason for calling the function named by the
// token before a '(', or "" if it is not denied.
func calledFunction(name token) string {
	switch name.kind {
	case tokWord:
		return deniedCall(name.text, false)
	case tokQuotedIdent:
		return deniedCall(name.text, true)
	case tokUnicodeIdent:
		return reasonEscapedCall // could spell any name
	}
	return ""
}

// keyword identifies the few keywords scanQuery acts on.
type keyword uint8

const (
	kwNone keyword = iota
	kwAs
	kwFor
	kwInto
	kwWith
	kwNo    // FOR NO KEY UPDATE
	kwKey   // FOR KEY SHARE
	kwShare // FOR SHARE
	// The statements a data-modifying WITH holds; UPDATE also follows FOR.
	kwInsert
	kwUpdate
	kwDelete
	kwMerge
)

// lockingReasons gives the Reason for FOR followed by each keyword: the
// locking clauses FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE.
var lockingReasons = [kwMerge + 1]string{
	kwUpdate: "FOR UPDATE clause",
	kwNo:     "FOR NO KEY UPDATE clause",
	kwShare:  "FOR SHARE clause",
	kwKey:    "FOR KEY SHARE clause",
}

// keywordOf identifies word, ignoring case.
func keywordOf(word string) keyword {
	switch len(word) {
	case 2:
		switch {
		case equalFold(word, "as"):
			return kwAs
		case equalFold(word, "no"):
			return kwNo
		}
	case 3:
		switch {
		case equalFold(word, "for"):
			return kwFor
		case equalFold(word, "key"):
			return kwKey
		}
	case 4:
		switch {
		case equalFold(word, "into"):
			return kwInto
		case equalFold(word, "with"):
			return kwWith
		}
	case 5:
		switch {
		case equalFold(word, "share"):
			return kwShare
		case equalFold(word, "merge"):
			return kwMerge
		}
	case 6:
		switch {
		case equalFold(word, "insert"):
			return kwInsert
		case equalFold(word, "update"):
			return kwUpdate
		case equalFold(word, "delete"):
			return kwDelete
		}
	}
	return kwNone
}
