package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait/internal/classify"
	"github.com/pgwait/pgwait/internal/lsn"
)

// Query exec modes. pgx's default_query_exec_mode, or a pgx.QueryExecMode
// passed as a statement's first argument, chooses how a statement reaches
// the server, as with pgx stdlib; pgwait keeps a read's wait, and a write's
// LSN capture after its commit, in the statement's own round trip:
//
//	mode             the statement                     replica read with a wait     write with its LSN capture
//	cache_statement  prepared once per connection      WAIT, Bind/Execute: 1 RT     BEGIN, stmt, COMMIT, LSN: 1 RT
//	                 under a name (stmtcache.go)       (first use: WAIT + Parse,
//	                                                   then Bind/Execute: 2 RT)
//	cache_describe   described once (unnamed Parse),   WAIT, Parse/Bind/Execute     as cache_statement, all
//	                 then Parse/Bind/Execute unnamed   with the described types:    unnamed: 1 RT (first use: a
//	                 with the described types          1 RT (first use: 2, as       describe RT before)
//	                                                   cache_statement)
//	describe_exec    described (unnamed) each time,    WAIT + describe, then        describe, then the capture:
//	                 then executed                     execute: 2 RT                2 RT
//	exec             unnamed, parameter types from     WAIT, Parse/Bind/Execute:    1 RT, all unnamed
//	                 the Go values, text formats       1 RT
//	simple_protocol  arguments interpolated by pgx's   "WAIT FOR LSN ...\n;<sql>"   "BEGIN\n;<sql>\n;COMMIT\n;
//	                 sanitizer, one simple Query       as one simple Query: 1 RT    SELECT lsn" as one simple
//	                                                                                Query for one data statement
//	                                                                                (1 RT); else <sql>, then the
//	                                                                                LSN (2 RT)
//
// In every mode but cache_statement pgwait's own statements (BEGIN, COMMIT,
// the LSN query) are unnamed, or simple queries in simple_protocol, so that
// no named statement is left on the server (PgBouncer in transaction
// pooling cannot keep them). A Stmt from database/sql's Prepare is a named
// prepared statement in every mode, as with pgx stdlib, and runs as in
// cache_statement; once closed, a replica connection deallocates it before
// its next read (flushStale).

// modeKey is the context key of a statement's exec mode.
type modeKey struct{}

// withExecMode runs the statements made with ctx in mode.
func withExecMode(ctx context.Context, mode pgx.QueryExecMode) context.Context {
	return context.WithValue(ctx, modeKey{}, mode)
}

// modeFor returns the exec mode of a statement made with ctx on s: the
// statement's own, or the connection's default_query_exec_mode.
func (s *side) modeFor(ctx context.Context) pgx.QueryExecMode {
	if m, ok := ctx.Value(modeKey{}).(pgx.QueryExecMode); ok {
		return m
	}
	return s.mode
}

// validMode reports a mode pgx knows.
func validMode(m pgx.QueryExecMode) bool {
	return m >= pgx.QueryExecModeCacheStatement && m <= pgx.QueryExecModeSimpleProtocol
}

// unnamed is a statement bound for the extended protocol without a named
// statement: Parse (unnamed), Bind, Describe, Execute.
type unnamed struct {
	sql     string
	oids    []uint32
	values  [][]byte
	formats []int16
	results []int16
}

func (u *unnamed) send(p *pgconn.Pipeline) {
	p.SendQueryParams(u.sql, u.values, u.oids, u.formats, u.results)
}

// knownDescription returns what mode needs to bind sql without a round trip
// of its own: nothing in exec, the cached description in cache_describe;
// ok is false when sql must be described first.
func (s *side) knownDescription(mode pgx.QueryExecMode, sql string) (sd *pgconn.StatementDescription, ok bool) {
	switch mode {
	case pgx.QueryExecModeExec:
		return nil, true
	case pgx.QueryExecModeCacheDescribe:
		sd, ok = s.described[sql]
		return sd, ok
	}
	return nil, false
}

// describe returns sql's description as mode needs it, describing it with
// the unnamed statement when it is not known.
func (s *side) describe(ctx context.Context, mode pgx.QueryExecMode, sql string) (*pgconn.StatementDescription, error) {
	if sd, ok := s.knownDescription(mode, sql); ok {
		return sd, nil
	}
	sd, err := s.pg.Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, err
	}
	s.keepDescription(mode, sql, sd)
	return sd, nil
}

// keepDescription caches a description in cache_describe, as pgx's
// description cache does.
func (s *side) keepDescription(mode pgx.QueryExecMode, sql string, sd *pgconn.StatementDescription) {
	if mode != pgx.QueryExecModeCacheDescribe {
		return
	}
	if s.described == nil || len(s.described) >= stmtCacheSize {
		s.described = map[string]*pgconn.StatementDescription{}
	}
	sd.SQL = sql
	s.described[sql] = sd
}

// bindUnnamed encodes args for sql as pgx does in the mode sd comes from:
// with sd's parameter types (cache_describe, describe_exec), or, sd nil,
// with types and text formats chosen from the Go values (exec). A query's
// results come in pgx stdlib's formats when the columns are known, else as
// pgx's builder chooses.
func (s *side) bindUnnamed(sd *pgconn.StatementDescription, sql string, args []any, query bool) (*unnamed, error) {
	if sd == nil {
		if err := s.eqb.Build(s.pgx.TypeMap(), nil, args); err != nil {
			return nil, err
		}
		return &unnamed{sql: sql, values: s.eqb.ParamValues, formats: s.eqb.ParamFormats, results: s.eqb.ResultFormats}, nil
	}
	if query && len(sd.ParamOIDs) != len(args) {
		return nil, fmt.Errorf("expected %d arguments, got %d", len(sd.ParamOIDs), len(args))
	}
	if err := s.eqb.Build(s.pgx.TypeMap(), sd, args); err != nil {
		return nil, err
	}
	u := &unnamed{sql: sql, oids: sd.ParamOIDs, values: s.eqb.ParamValues, formats: s.eqb.ParamFormats, results: s.eqb.ResultFormats}
	if query {
		u.results = make([]int16, len(sd.Fields))
		for i, f := range sd.Fields {
			u.results[i] = resultFormats[f.DataTypeOID]
		}
	}
	return u, nil
}

// bindMode describes (when needed) and binds sql for an unnamed mode.
func (s *side) bindMode(ctx context.Context, mode pgx.QueryExecMode, sql string, args []any, query bool) (*unnamed, error) {
	sd, err := s.describe(ctx, mode, sql)
	if err != nil {
		return nil, err
	}
	return s.bindUnnamed(sd, sql, args, query)
}

// queryUnnamed runs a statement in an unnamed mode and returns its rows,
// first row preloaded.
func (s *side) queryUnnamed(ctx context.Context, mode pgx.QueryExecMode, sql string, args []any) (*rows, error) {
	u, err := s.bindMode(ctx, mode, sql, args, true)
	if err != nil {
		s.forget(sql, err)
		return nil, err
	}
	return s.runUnnamed(ctx, u)
}

func (s *side) runUnnamed(ctx context.Context, u *unnamed) (*rows, error) {
	if s.capturesReplay() {
		return s.queryReplay(ctx, u.sql, nil, u.send)
	}
	rr := s.pg.ExecParams(ctx, u.sql, u.values, u.oids, u.formats, u.results)
	r := newRows(rr, s.pgx.TypeMap(), nil, func(_ pgconn.CommandTag, err error) error {
		s.forget(u.sql, err)
		return err
	})
	if err := r.preload(); err != nil {
		return nil, err
	}
	return r, nil
}

// execUnnamed runs a statement in an unnamed mode and returns its tag.
func (s *side) execUnnamed(ctx context.Context, mode pgx.QueryExecMode, sql string, args []any) (pgconn.CommandTag, error) {
	u, err := s.bindMode(ctx, mode, sql, args, false)
	if err != nil {
		s.forget(sql, err)
		return pgconn.CommandTag{}, err
	}
	tag, err := s.pg.ExecParams(ctx, u.sql, u.values, u.oids, u.formats, u.results).Close()
	s.forget(sql, err)
	return tag, err
}

// waitDescribe sends WAIT FOR LSN and, after it, the description of sql
// (unnamed), in one round trip, and returns the wait's status and, when it
// succeeded, the description.
func (s *side) waitDescribe(ctx context.Context, mode pgx.QueryExecMode, target lsn.LSN, timeoutMS int64, sql string) (string, *pgconn.StatementDescription, error) {
	p, status, err := s.sendAfterWait(ctx, target, timeoutMS, func(p *pgconn.Pipeline) { p.SendPrepare("", sql, nil) })
	if p == nil {
		return status, nil, err
	}
	res, err := p.GetResults()
	sd, ok := res.(*pgconn.StatementDescription)
	if err != nil || !ok {
		p.Close()
		return status, nil, unexpected("statement description", res, err)
	}
	if res, err := p.GetResults(); err != nil || !isSync(res) {
		p.Close()
		return status, nil, unexpected("sync after describe", res, err)
	}
	if err := p.Close(); err != nil {
		return status, nil, err
	}
	s.keepDescription(mode, sql, sd)
	return status, sd, nil
}

// sendOwn queues one of pgwait's own statements: prepared (cache_statement)
// or unnamed.
func sendOwn(p *pgconn.Pipeline, sd *pgconn.StatementDescription, sql string) {
	if sd != nil {
		p.SendQueryStatement(sd, nil, nil, nil)
		return
	}
	p.SendQueryParams(sql, nil, nil, nil, nil)
}

// ownNamed reports whether pgwait prepares its own statements on s: only
// in cache_statement, whose connections keep named statements anyway.
func (s *side) ownNamed() bool { return s.mode == pgx.QueryExecModeCacheStatement }

// readWALSizes reads the server's WAL page and segment sizes once, without
// a named statement.
func (s *side) readWALSizes(ctx context.Context) error {
	if s.capture.walBlock != 0 {
		return nil
	}
	var row []string
	if s.mode == pgx.QueryExecModeSimpleProtocol {
		results, err := s.pg.Exec(ctx, sizesQuery).ReadAll()
		if err != nil {
			return err
		}
		if len(results) == 1 && len(results[0].Rows) == 1 {
			for _, v := range results[0].Rows[0] {
				row = append(row, string(v))
			}
		}
	} else {
		res := s.pg.ExecParams(ctx, sizesQuery, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		if len(res.Rows) == 1 {
			for _, v := range res.Rows[0] {
				row = append(row, string(v))
			}
		}
	}
	if len(row) != 2 {
		return errors.New("pgwait: protocol: expected the WAL sizes in a row of 2 columns")
	}
	c := captureStmts{}
	fmt.Sscan(row[0], &c.walBlock)
	fmt.Sscan(row[1], &c.walSegment)
	s.capture = c
	return nil
}

// ownLSN reads the primary's WAL position in a round trip of its own, with
// the prepared LSN query, an unnamed one, or a simple query.
func (s *side) ownLSN(ctx context.Context) (lsn.LSN, error) {
	switch {
	case s.capture.lsn != nil:
		return s.readLSN(s.pg.ExecStatement(ctx, s.capture.lsn, nil, nil, nil))
	case s.mode == pgx.QueryExecModeSimpleProtocol:
		mrr := s.pg.Exec(ctx, lsnQuery)
		l, err := lsn.LSN(0), errors.New("pgwait: protocol: no result for the LSN query")
		if mrr.NextResult() {
			l, err = s.readLSN(mrr.ResultReader())
		}
		if closeErr := mrr.Close(); closeErr != nil {
			err = closeErr
		}
		return l, err
	}
	return s.readLSN(s.pg.ExecParams(ctx, lsnQuery, nil, nil, nil, nil))
}

// The simple protocol.

// errSimpleArgs is returned for a statement with arguments sent with
// pgx.QueryExecModeSimpleProtocol as a query argument on a connection of
// another default mode. pgwait sends such a statement in one simple query
// with its WAIT FOR LSN or LSN capture, its arguments interpolated by pgx's
// sanitizer, which it reaches through a pgx batch, and pgx interpolates a
// batch only on a connection whose default mode is simple_protocol. It is
// refused whether or not this statement needs a wait or a capture, so that
// whether it runs does not depend on replication lag.
var errSimpleArgs = errors.New("pgwait: pgx.QueryExecModeSimpleProtocol as a query argument, before arguments, " +
	"needs default_query_exec_mode=simple_protocol in the connection string (pgwait sends the statement " +
	"with its own in one simple query, its arguments interpolated by pgx); set it there, or pass another mode")

// simpleOK refuses what errSimpleArgs says.
func (s *side) simpleOK(args []any) error {
	if len(args) > 0 && s.mode != pgx.QueryExecModeSimpleProtocol {
		return errSimpleArgs
	}
	return nil
}

// simpleArgs are the arguments with which pgx runs a statement in the
// simple protocol on s.
func (s *side) simpleArgs(args []any) []any {
	if s.mode == pgx.QueryExecModeSimpleProtocol {
		return args
	}
	return append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
}

// querySimple runs a statement through pgx in the simple protocol, as pgx
// stdlib does: pgx interpolates the arguments and the first result is read.
func (s *side) querySimple(ctx context.Context, sql string, args []any) (*rows, error) {
	if err := s.simpleOK(args); err != nil {
		return nil, err
	}
	if replayQ, replay := s.replayPart(sql); replay {
		res, prefix, err := s.sendSimple(ctx, true, simplePart{sql: sql, args: args, user: true}, replayQ)
		if err != nil {
			return nil, err
		}
		return s.simpleRows(res, prefix, true)
	}
	pr, err := s.pgx.Query(ctx, sql, s.simpleArgs(args)...)
	if err != nil {
		return nil, err
	}
	r := newRows(pgxResult{pr}, s.pgx.TypeMap(), nil, nil)
	if err := r.preload(); err != nil {
		return nil, err
	}
	return r, nil
}

// execSimple runs a statement through pgx in the simple protocol and
// returns its last command tag.
func (s *side) execSimple(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	if err := s.simpleOK(args); err != nil {
		return pgconn.CommandTag{}, err
	}
	return s.pgx.Exec(ctx, sql, s.simpleArgs(args)...)
}

// simplePart is one statement of a simple query pgwait composes.
type simplePart struct {
	sql  string
	args []any
	user bool // the caller's statement: pgx's sanitizer interpolates it
}

// simpleResults reads the results of one simple query, in order.
type simpleResults interface {
	next() (resultReader, error)
	close() error
}

// sendSimple sends parts as one simple query, joined as pgx joins a batch
// ("\n;", which ends a trailing line comment). The caller's statement is
// interpolated by pgx's own sanitizer, through a pgx batch on a connection
// whose default mode is simple_protocol; prefix is how many bytes precede
// it, by which the positions of its errors are shifted back.
func (s *side) sendSimple(ctx context.Context, query bool, parts ...simplePart) (res simpleResults, prefix int, err error) {
	sanitize := false
	var b strings.Builder
	for i, part := range parts {
		if i > 0 {
			b.WriteString("\n;")
		}
		if part.user {
			prefix = b.Len()
			sanitize = len(part.args) > 0 || query && s.mode == pgx.QueryExecModeSimpleProtocol
		}
		b.WriteString(part.sql)
	}
	if !sanitize {
		return mrrResults{s.pg.Exec(ctx, b.String())}, prefix, nil
	}
	if s.mode != pgx.QueryExecModeSimpleProtocol {
		return nil, 0, errSimpleArgs
	}
	batch := &pgx.Batch{}
	for _, part := range parts {
		batch.Queue(part.sql, part.args...)
	}
	return batchResults{s.pgx.SendBatch(ctx, batch)}, prefix, nil
}

type mrrResults struct{ mrr *pgconn.MultiResultReader }

var errNoResult = errors.New("pgwait: protocol: a statement of the simple query returned no result")

func (m mrrResults) next() (resultReader, error) {
	if !m.mrr.NextResult() {
		err := m.mrr.Close()
		if err == nil {
			err = errNoResult
		}
		return nil, err
	}
	return m.mrr.ResultReader(), nil
}

func (m mrrResults) close() error { return m.mrr.Close() }

type batchResults struct{ br pgx.BatchResults }

func (b batchResults) next() (resultReader, error) {
	r, err := b.br.Query()
	if err != nil {
		return nil, err
	}
	return pgxResult{r}, nil
}

func (b batchResults) close() error { return b.br.Close() }

// shiftPosition makes the position of a server error in the caller's
// statement count from the statement's start, as when it is sent alone.
func shiftPosition(err error, prefix int) error {
	var pgErr *pgconn.PgError
	if prefix > 0 && errors.As(err, &pgErr) && pgErr.Position > int32(prefix) {
		pgErr.Position -= int32(prefix)
	}
	return err
}

// waitStatusOf reads a WAIT FOR LSN result.
func waitStatusOf(rr resultReader) (string, error) {
	status := waitStatusMalformed
	for rr.NextRow() {
		if v := rr.Values(); len(v) == 1 {
			status = string(v[0])
		}
	}
	if _, err := rr.Close(); err != nil {
		return "", err
	}
	return status, nil
}

// waitQuerySimple sends WAIT FOR LSN and the query as one simple query, and
// reads the first result as the wait's status. When the wait succeeds it
// returns the query's rows; otherwise it reads the rest and returns only
// the status (the query's errors then do not matter).
func (s *side) waitQuerySimple(ctx context.Context, target lsn.LSN, timeoutMS int64, sql string, args []any) (string, *rows, error) {
	parts := []simplePart{{sql: waitSQL(target, timeoutMS)}, {sql: sql, args: args, user: true}}
	replayQ, replay := s.replayPart(sql)
	if replay {
		parts = append(parts, replayQ)
	}
	res, prefix, err := s.sendSimple(ctx, true, parts...)
	if err != nil {
		return "", nil, err
	}
	first, err := res.next()
	if err != nil {
		res.close()
		return "", nil, err
	}
	status, err := waitStatusOf(first)
	if err != nil || status != waitSuccess {
		closeErr := res.close()
		var pgErr *pgconn.PgError
		if err == nil && closeErr != nil && !errors.As(closeErr, &pgErr) {
			err = closeErr
		}
		return status, nil, err
	}
	r, err := s.simpleRows(res, prefix, replay)
	return status, r, err
}

// simpleRows returns the rows of the caller's statement, the next result of
// a simple query, first row preloaded; their end reads the rest: the replay
// query's result when replay says it was sent (replay.go), then the end.
func (s *side) simpleRows(res simpleResults, prefix int, replay bool) (*rows, error) {
	rr, err := res.next()
	if err != nil {
		res.close()
		return nil, shiftPosition(err, prefix)
	}
	r := newRows(rr, s.pgx.TypeMap(), nil, func(_ pgconn.CommandTag, err error) error {
		if replay && err == nil {
			err = s.readReplay(res.next())
		}
		if closeErr := res.close(); err == nil {
			err = closeErr
		}
		return shiftPosition(err, prefix)
	})
	if err := r.preload(); err != nil {
		return nil, err
	}
	return r, nil
}

// replayPart is the replay query as a statement of a simple query, when a
// read of sql on s captures the replay position: only for one statement,
// whose result comes right before it.
func (s *side) replayPart(sql string) (simplePart, bool) {
	if !s.capturesReplay() || !singleStatement(sql) {
		return simplePart{}, false
	}
	return simplePart{sql: replayQuery}, true
}

// singleStatement reports a text of one statement, which the simple
// protocol can wrap in BEGIN and COMMIT.
func singleStatement(sql string) bool { return classify.Classify(sql).Statements == 1 }

// captureSimple runs a write in autocommit through the simple protocol and
// reads its commit's LSN: for one data statement, "BEGIN\n;<sql>\n;COMMIT\n;
// SELECT pg_current_wal_insert_lsn()::text" as one simple query; for
// anything else (DDL, VACUUM, several statements: one implicit transaction,
// whose LSN could only be read before its commit) the statement as pgx runs
// it, then the LSN in a second round trip. The statement's result is handed
// to use, which reads and closes it, then calls finish with the statement's
// error to learn the commit's LSN (0 when a transaction block stays open).
func (s *side) captureSimple(ctx context.Context, shape captureShape, sql string, args []any, query bool,
	use func(rr resultReader, finish func(error) (lsn.LSN, error)) error) error {
	if err := s.simpleOK(args); err != nil {
		return err
	}
	if err := s.readWALSizes(ctx); err != nil {
		return err
	}
	if shape == inBlock && singleStatement(sql) {
		res, prefix, err := s.sendSimple(ctx, query,
			simplePart{sql: "BEGIN"}, simplePart{sql: sql, args: args, user: true}, simplePart{sql: "COMMIT"}, simplePart{sql: lsnQuery})
		if err != nil {
			return err
		}
		fail := func(err error) error {
			res.close()
			if !s.broken() && s.pg.TxStatus() != 'I' {
				s.simple(context.WithoutCancel(ctx), "ROLLBACK")
			}
			return shiftPosition(err, prefix)
		}
		begin, err := res.next()
		if err == nil {
			_, err = begin.Close()
		}
		if err != nil {
			return fail(err)
		}
		rr, err := res.next()
		if err != nil {
			return fail(err)
		}
		return use(rr, func(stmtErr error) (lsn.LSN, error) {
			if stmtErr != nil {
				return 0, fail(stmtErr)
			}
			commit, err := res.next()
			if err == nil {
				_, err = commit.Close()
			}
			if err != nil {
				return 0, fail(err) // COMMIT failed: nothing was committed
			}
			var l lsn.LSN
			if rr, err := res.next(); err == nil {
				l, err = s.readLSN(rr)
			}
			if closeErr := res.close(); err == nil {
				err = closeErr
			}
			if err != nil {
				return 0, fmt.Errorf("pgwait: the statement committed on the primary, but reading its WAL position failed (reads may not see it): %w", err)
			}
			return l, nil
		})
	}
	if !query {
		tag, err := s.execSimple(ctx, sql, args)
		return use(tagResult(tag), func(error) (lsn.LSN, error) { return s.afterSimple(ctx, err) })
	}
	pr, err := s.pgx.Query(ctx, sql, s.simpleArgs(args)...)
	if err != nil {
		return err
	}
	return use(pgxResult{pr}, func(stmtErr error) (lsn.LSN, error) { return s.afterSimple(ctx, stmtErr) })
}

// afterSimple reads the LSN after a statement that ran on its own, in a
// second round trip, unless it failed or left a transaction block open
// (whose end will be captured).
func (s *side) afterSimple(ctx context.Context, stmtErr error) (lsn.LSN, error) {
	if stmtErr != nil || s.pg.TxStatus() != 'I' {
		return 0, stmtErr
	}
	l, err := s.ownLSN(ctx)
	if err != nil {
		return 0, fmt.Errorf("pgwait: the statement committed on the primary, but reading its WAL position failed (reads may not see it): %w", err)
	}
	return l, nil
}

// tagResult is the result of a statement pgx already read: its tag only.
type tagResult pgconn.CommandTag

func (tagResult) NextRow() bool                                { return false }
func (tagResult) Values() [][]byte                             { return nil }
func (tagResult) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (t tagResult) Close() (pgconn.CommandTag, error)          { return pgconn.CommandTag(t), nil }

// execCaptureSimple runs a write through the simple protocol and returns
// its tag and its commit's LSN.
func (s *side) execCaptureSimple(ctx context.Context, shape captureShape, sql string, args []any) (pgconn.CommandTag, lsn.LSN, error) {
	var tag pgconn.CommandTag
	var l lsn.LSN
	err := s.captureSimple(ctx, shape, sql, args, false, func(rr resultReader, finish func(error) (lsn.LSN, error)) error {
		var err error
		tag, err = rr.Close()
		l, err = finish(err)
		return err
	})
	if err != nil {
		return tag, 0, err
	}
	return tag, l, nil
}

// queryCaptureSimple runs a write that returns rows through the simple
// protocol; done receives the commit's LSN once the rows are read.
func (s *side) queryCaptureSimple(ctx context.Context, shape captureShape, sql string, args []any, done func(lsn.LSN, error)) (*rows, error) {
	var r *rows
	err := s.captureSimple(ctx, shape, sql, args, true, func(rr resultReader, finish func(error) (lsn.LSN, error)) error {
		r = newRows(rr, s.pgx.TypeMap(), nil, func(_ pgconn.CommandTag, err error) error {
			l, err := finish(err)
			done(l, err)
			return err
		})
		return r.preload()
	})
	if err != nil {
		if r == nil {
			done(0, err)
		}
		return nil, err
	}
	return r, nil
}

// commitSimple commits the open transaction and reads the commit's LSN as
// one simple query: "COMMIT\n;SELECT pg_current_wal_insert_lsn()::text".
func (s *side) commitSimple(ctx context.Context) (lsn.LSN, error) {
	if err := s.readWALSizes(ctx); err != nil {
		return 0, err
	}
	res := mrrResults{s.pg.Exec(ctx, "COMMIT\n;"+lsnQuery)}
	rr, err := res.next()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = rr.Close()
	}
	if err != nil {
		res.close()
		return 0, err
	}
	if tag.String() == "ROLLBACK" {
		res.close()
		return 0, errRolledBack
	}
	l := lsn.LSN(0)
	if rr, err = res.next(); err == nil {
		l, err = s.readLSN(rr)
	}
	if closeErr := res.close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, fmt.Errorf("pgwait: the transaction committed on the primary, but reading its WAL position failed (reads may not see it): %w", err)
	}
	return l, nil
}
