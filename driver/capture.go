package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait/internal/lsn"
)

// LSN capture: after a write commits, read the WAL insert position in the
// same round trip, so that reads can wait for it.
//
// The position must be read after the commit record is in the WAL: read in
// the write's own implicit transaction (RETURNING, or one Sync for both) it
// comes before the commit record and reads may miss the write. Two shapes
// keep it after:
//
//   - BEGIN, the statement, COMMIT, the LSN query, one Sync: for data
//     statements (INSERT, UPDATE, DELETE, MERGE, queries). The server answers
//     everything in one flush.
//   - the statement, Sync, the LSN query, Sync: for everything else (DDL,
//     VACUUM, CREATE INDEX CONCURRENTLY cannot run inside BEGIN).
//
// Every statement that commits on the primary is captured, reads included:
// a SELECT may call a function that writes, and a read's position bounds
// what it saw, so that later reads on a replica never go back in time
// (monotonic reads).
//
// BEGIN, COMMIT and the LSN query are prepared once per connection in
// cache_statement; in the other exec modes they are unnamed, or simple
// queries (modes.go). The raw insert position is mapped back to the end of
// the last record (lsn.EndOfRecord), so that it never points past a page
// header no record ends at.

const (
	lsnQuery   = "SELECT pg_current_wal_insert_lsn()::text"
	sizesQuery = "SELECT current_setting('wal_block_size'), (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')"
)

// captureStmts are the statements capture prepares on a primary connection,
// and the server's WAL page and segment sizes.
type captureStmts struct {
	begin, commit, lsn   *pgconn.StatementDescription
	walBlock, walSegment uint64
}

var captureNames = [3]string{"pgwait_begin", "pgwait_commit", "pgwait_lsn"}

// prepareCapture prepares BEGIN, COMMIT and the LSN query and reads the WAL
// sizes, in one round trip, on first use. Each statement is closed first
// (closing a missing statement is no error), so that statements left by an
// earlier preparation never clash.
func (s *side) prepareCapture(ctx context.Context) error {
	if !s.ownNamed() {
		return s.readWALSizes(ctx) // no named statement outside cache_statement (modes.go)
	}
	if s.capture.lsn != nil {
		return nil
	}
	texts := [3]string{"BEGIN", "COMMIT", lsnQuery}
	p := s.pg.StartPipeline(ctx)
	for i, name := range captureNames {
		p.SendDeallocate(name)
		p.SendPrepare(name, texts[i], nil)
	}
	p.SendQueryParams(sizesQuery, nil, nil, nil, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return err
	}
	var sds [3]*pgconn.StatementDescription
	var c captureStmts
	err := func() error {
		for i := range sds {
			if _, err := p.GetResults(); err != nil { // CloseComplete
				return err
			}
			res, err := p.GetResults()
			if err != nil {
				return err
			}
			sd, ok := res.(*pgconn.StatementDescription)
			if !ok {
				return unexpected("statement description", res, nil)
			}
			sd.Name, sd.SQL = captureNames[i], texts[i]
			sds[i] = sd
		}
		res, err := p.GetResults()
		if err != nil {
			return err
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			return unexpected("WAL sizes", res, nil)
		}
		for rr.NextRow() {
			v := rr.Values()
			c.walBlock, _ = strconv.ParseUint(string(v[0]), 10, 64)
			c.walSegment, _ = strconv.ParseUint(string(v[1]), 10, 64)
		}
		_, err = rr.Close()
		return err
	}()
	if closeErr := p.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	c.begin, c.commit, c.lsn = sds[0], sds[1], sds[2]
	s.capture = c
	return nil
}

// captureShape says how a capture pipeline is laid out.
type captureShape uint8

const (
	separateSync captureShape = iota // statement, Sync, LSN, Sync
	inBlock                          // BEGIN, statement, COMMIT, LSN, Sync
)

// startCapture sends a write and its LSN capture in one round trip and
// returns the results with the statement's next in line, and the
// converters of its columns when known. The statement goes as its exec
// mode says (modes.go), after its description in cache_describe (first use)
// and describe_exec; BEGIN, COMMIT and the LSN query are prepared in
// cache_statement, unnamed otherwise. query is set when the statement's
// rows are read.
//
// The inBlock shape, one Sync, goes as a pgconn.Batch rather than through a
// pgconn.Pipeline: the same messages, but a pipeline allocates about thirty
// times per round trip to track its requests, which a batch does not need.
func (s *side) startCapture(ctx context.Context, shape captureShape, sql string, args []any, query bool) (captureResults, []valueFunc, error) {
	if err := s.prepareCapture(ctx); err != nil {
		return nil, nil, err
	}
	// The statement is bound into st (cache_statement) or u: no closure
	// and no placeholder allocated for each write.
	var st *stmt
	var u *unnamed
	var err error
	if mode := s.modeFor(ctx); mode == pgx.QueryExecModeCacheStatement {
		if st, err = s.bind(ctx, sql, args); err != nil {
			return nil, nil, err
		}
	} else if u, err = s.bindMode(ctx, mode, sql, args, query); err != nil {
		s.forget(sql, err)
		return nil, nil, err
	}
	var convert []valueFunc
	if st != nil {
		convert = st.convert
	}
	if shape == inBlock {
		var b pgconn.Batch
		batchOwn(&b, s.capture.begin, "BEGIN")
		if st != nil {
			b.ExecStatement(st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
		} else {
			b.ExecParams(u.sql, u.values, u.oids, u.formats, u.results)
		}
		batchOwn(&b, s.capture.commit, "COMMIT")
		batchOwn(&b, s.capture.lsn, lsnQuery)
		p := batchPipeline{s.pg.ExecBatch(ctx, &b)}
		if err := skipResult(p, "BEGIN result"); err != nil {
			s.abandonCapture(ctx, p)
			return nil, nil, unsent(err)
		}
		return p, convert, nil
	}
	p := s.pg.StartPipeline(ctx)
	if st != nil {
		p.SendQueryStatement(st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
	} else {
		u.send(p)
	}
	p.SendPipelineSync()
	sendOwn(p, s.capture.lsn, lsnQuery)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, nil, err
	}
	return p, convert, nil
}

// captureResults are the results of a capture's round trip, read in order:
// a pipeline's (separateSync), or a batch's through batchPipeline
// (inBlock).
type captureResults interface {
	GetResults() (any, error)
	Close() error
}

// batchPipeline reads a batch's results as a pipeline's: each statement's
// *pgconn.ResultReader, then a *pgconn.PipelineSync for the batch's Sync.
// As with a pipeline, a statement's error comes in its place (the server
// skips the rest), and Close reads whatever is left.
type batchPipeline struct{ mrr *pgconn.MultiResultReader }

// batchSync stands for the Sync that ends a batch.
var batchSync = &pgconn.PipelineSync{}

func (b batchPipeline) GetResults() (any, error) {
	if rr := b.mrr.ResultReader(); rr != nil {
		rr.Close() // as a pipeline does: the previous result is done with
	}
	if b.mrr.NextResult() {
		return b.mrr.ResultReader(), nil
	}
	if err := b.mrr.Close(); err != nil {
		return nil, err
	}
	return batchSync, nil
}

func (b batchPipeline) Close() error { return b.mrr.Close() }

// batchOwn queues one of pgwait's own statements on a batch, as sendOwn
// does on a pipeline.
func batchOwn(b *pgconn.Batch, sd *pgconn.StatementDescription, sql string) {
	if sd != nil {
		b.ExecStatement(sd, nil, nil, nil)
		return
	}
	b.ExecParams(sql, nil, nil, nil, nil)
}

// unsent marks a batch's failed write as safe to retry on another
// connection, as pgconn marks a pipeline's or a statement's that wrote
// nothing (database/sql then retries, as with pgx stdlib): a batch goes in
// one write of a few hundred bytes on a connection with nothing in flight,
// and such a write fails whole.
func unsent(err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "write" {
		return unsentError{err}
	}
	return err
}

type unsentError struct{ error }

func (e unsentError) Unwrap() error   { return e.error }
func (unsentError) SafeToRetry() bool { return true }

// skipResult reads a result that carries nothing of interest.
func skipResult(p captureResults, what string) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return unexpected(what, res, nil)
	}
	_, err = rr.Close()
	return err
}

// abandonCapture closes a capture pipeline whose statement failed: the
// server skipped the rest, and a transaction opened by BEGIN is rolled back.
func (s *side) abandonCapture(ctx context.Context, p captureResults) {
	p.Close()
	if !s.broken() && s.pg.TxStatus() != 'I' {
		s.simple(context.WithoutCancel(ctx), "ROLLBACK")
	}
}

// finishCapture reads what follows the statement's result (COMMIT or Sync,
// the LSN, Sync), closes the pipeline and returns the commit's LSN. When the
// statement failed (stmtErr) nothing was committed.
func (s *side) finishCapture(ctx context.Context, p captureResults, shape captureShape, stmtErr error) (lsn.LSN, error) {
	if stmtErr != nil {
		s.abandonCapture(ctx, p)
		return 0, stmtErr
	}
	switch shape {
	case inBlock:
		// COMMIT can fail on its own (deferred constraints, serialization):
		// then it is the statement's error, and nothing was committed.
		if err := skipResult(p, "COMMIT result"); err != nil {
			s.abandonCapture(ctx, p)
			return 0, err
		}
	case separateSync:
		if res, err := p.GetResults(); err != nil || !isSync(res) {
			s.abandonCapture(ctx, p)
			return 0, unexpected("sync after the statement", res, err)
		}
	}
	return s.readCaptured(ctx, p)
}

// readCaptured reads the LSN query's result and the final Sync of a capture
// pipeline whose statement committed, and closes the pipeline.
func (s *side) readCaptured(ctx context.Context, p captureResults) (lsn.LSN, error) {
	var l lsn.LSN
	res, err := p.GetResults()
	if err == nil {
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			err = unexpected("LSN result", res, nil)
		} else {
			l, err = s.readLSN(rr)
		}
	}
	if err == nil {
		if res, syncErr := p.GetResults(); syncErr != nil || !isSync(res) {
			err = unexpected("final sync", res, syncErr)
		}
	}
	if closeErr := p.Close(); err == nil {
		err = closeErr
	}
	if err != nil && isPgError(err) && !s.broken() {
		// The write committed but the prepared LSN query failed (someone ran
		// DEALLOCATE ALL or DISCARD ALL): read the LSN unprepared, still after
		// the commit, and prepare again next time.
		s.capture = captureStmts{walBlock: s.capture.walBlock, walSegment: s.capture.walSegment}
		l, err = s.readLSN(s.pg.ExecParams(ctx, lsnQuery, nil, nil, nil, nil))
	}
	if err != nil {
		return 0, fmt.Errorf("pgwait: the statement committed on the primary, but reading its WAL position failed (reads may not see it): %w", err)
	}
	return l, nil
}

// isPgError reports an error the server sent. (Its own function: the
// target of errors.As escapes, and a caller declaring it would pay that
// allocation on every call, error or not.)
func isPgError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// readLSN reads an LSN query's result and maps the insert position to the
// end of the last record.
func (s *side) readLSN(rr resultReader) (lsn.LSN, error) {
	var l lsn.LSN
	var err error
	read := false
	for rr.NextRow() {
		l, err = lsn.ParseBytes(rr.Values()[0])
		read = true
	}
	if _, closeErr := rr.Close(); closeErr != nil {
		return 0, closeErr
	}
	if !read {
		_, err = lsn.Parse("") // no row: the error of an empty text
	}
	if err != nil {
		return 0, err
	}
	return lsn.EndOfRecord(l, s.capture.walBlock, s.capture.walSegment), nil
}

// execCapture runs a write in autocommit and returns its commit's LSN. A
// statement whose cached plan went stale failed before it executed, and
// nothing was committed: it runs again, prepared afresh.
func (s *side) execCapture(ctx context.Context, shape captureShape, sql string, args []any) (pgconn.CommandTag, lsn.LSN, error) {
	retry := s.idle()
	tag, l, err := s.execCaptureOnce(ctx, shape, sql, args)
	if err != nil && retry && staleStatement(err) && s.idle() {
		s.capture = captureStmts{} // the stale one may be BEGIN or COMMIT
		s.invalidate(sql)
		tag, l, err = s.execCaptureOnce(ctx, shape, sql, args)
	}
	return tag, l, err
}

func (s *side) execCaptureOnce(ctx context.Context, shape captureShape, sql string, args []any) (pgconn.CommandTag, lsn.LSN, error) {
	if s.modeFor(ctx) == pgx.QueryExecModeSimpleProtocol {
		return s.execCaptureSimple(ctx, shape, sql, args)
	}
	p, _, err := s.startCapture(ctx, shape, sql, args, false)
	if err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	var tag pgconn.CommandTag
	res, err := p.GetResults()
	if err == nil {
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			err = unexpected("statement result", res, nil)
		} else {
			tag, err = rr.Close()
		}
	}
	s.forget(sql, err)
	l, err := s.finishCapture(ctx, p, shape, err)
	return tag, l, err
}

// queryCapture runs a write that returns rows (INSERT ... RETURNING) in
// autocommit; done receives the commit's LSN once the rows are read. A
// statement whose cached plan went stale runs again, as in execCapture
// (the error comes before any row).
func (s *side) queryCapture(ctx context.Context, shape captureShape, sql string, args []any, done func(lsn.LSN, error)) (*rows, error) {
	retry := s.idle()
	preloading := true
	first := func(l lsn.LSN, err error) {
		if preloading && retry && staleStatement(err) && s.idle() {
			return // run again below; done hears of that run
		}
		done(l, err)
	}
	r, err := s.queryCaptureOnce(ctx, shape, sql, args, first)
	preloading = false
	if err != nil && retry && staleStatement(err) && s.idle() {
		s.capture = captureStmts{}
		s.invalidate(sql)
		r, err = s.queryCaptureOnce(ctx, shape, sql, args, done)
	}
	return r, err
}

func (s *side) queryCaptureOnce(ctx context.Context, shape captureShape, sql string, args []any, done func(lsn.LSN, error)) (*rows, error) {
	if s.modeFor(ctx) == pgx.QueryExecModeSimpleProtocol {
		return s.queryCaptureSimple(ctx, shape, sql, args, done)
	}
	p, convert, err := s.startCapture(ctx, shape, sql, args, true)
	if err != nil {
		return nil, err
	}
	res, err := p.GetResults()
	rr, ok := res.(*pgconn.ResultReader)
	if err != nil || !ok {
		if err == nil {
			err = unexpected("statement result", res, nil)
		}
		s.forget(sql, err)
		_, err = s.finishCapture(ctx, p, shape, err)
		done(0, err)
		return nil, err
	}
	r := newRows(rr, s.pgx.TypeMap(), convert, func(_ pgconn.CommandTag, err error) error {
		s.forget(sql, err)
		l, err := s.finishCapture(ctx, p, shape, err)
		done(l, err)
		return err
	})
	if err := r.preload(); err != nil {
		return nil, err
	}
	return r, nil
}

// commitCapture commits the open transaction and reads the commit's LSN, in
// one round trip.
func (s *side) commitCapture(ctx context.Context) (lsn.LSN, error) {
	if s.mode == pgx.QueryExecModeSimpleProtocol {
		return s.commitSimple(ctx)
	}
	if err := s.prepareCapture(ctx); err != nil {
		return 0, err
	}
	p := s.pg.StartPipeline(ctx)
	sendOwn(p, s.capture.commit, "COMMIT")
	sendOwn(p, s.capture.lsn, lsnQuery)
	if err := p.Sync(); err != nil {
		p.Close()
		return 0, err
	}
	res, err := p.GetResults()
	if err == nil {
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			err = unexpected("COMMIT result", res, nil)
		} else {
			var tag pgconn.CommandTag
			tag, err = rr.Close()
			if err == nil && tag.String() == "ROLLBACK" {
				// The transaction had failed: nothing was committed.
				p.Close()
				return 0, errRolledBack
			}
		}
	}
	if err != nil {
		s.abandonCapture(ctx, p)
		return 0, err
	}
	return s.readCaptured(ctx, p)
}

// execScriptCapture runs a script of several statements, which commit
// together at its end, then reads the LSN in a second round trip: the simple
// protocol cannot be pipelined with the LSN query, and the LSN read in the
// script's own implicit transaction would come before its commit record.
func (s *side) execScriptCapture(ctx context.Context, sql string) (pgconn.CommandTag, lsn.LSN, error) {
	if err := s.prepareCapture(ctx); err != nil {
		return pgconn.CommandTag{}, 0, err
	}
	tag, err := s.execScript(ctx, sql)
	if err != nil {
		return tag, 0, err
	}
	if s.pg.TxStatus() != 'I' {
		return tag, 0, nil // the script opened a transaction: its COMMIT will be captured
	}
	l, err := s.ownLSN(ctx)
	if err != nil {
		return tag, 0, fmt.Errorf("pgwait: the script committed on the primary, but reading its WAL position failed (reads may not see it): %w", err)
	}
	return tag, l, nil
}
