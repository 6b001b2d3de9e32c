package driver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgwait/pgwait/internal/lsn"
	"github.com/pgwait/pgwait/internal/tracker"
)

// A side is one server connection of a pgwait connection: to the primary or
// to one replica. It is opened through pgx stdlib and then driven at the
// pgconn level, so that a write and its LSN capture, or a WAIT FOR LSN and
// its query, share one round trip.
type side struct {
	std *stdlib.Conn
	pgx *pgx.Conn
	pg  *pgconn.PgConn
	rep *replica // nil on the primary side

	cache stmtCache // stmtcache.go
	eqb   pgx.ExtendedQueryBuilder

	// mode is the connection's default_query_exec_mode (modes.go);
	// described caches statement descriptions in cache_describe.
	mode      pgx.QueryExecMode
	described map[string]*pgconn.StatementDescription

	// capture holds what LSN capture prepares on a primary connection.
	capture captureStmts
	// observer hears what reads on a replica connection saw (replay.go);
	// nil on the primary.
	observer replayObserver
	// bound watches round trips to a replica (watchReplica, read.go).
	bound *replicaBound
	major int // server major version
}

func newSide(std *stdlib.Conn, rep *replica) *side {
	s := &side{std: std, pgx: std.Conn(), pg: std.Conn().PgConn(), rep: rep}
	s.major = serverMajor(s.pg.ParameterStatus("server_version"))
	s.mode = s.pgx.Config().DefaultQueryExecMode
	return s
}

// serverMajor reads the major version from server_version ("19rc1",
// "15.18 (Debian ...)", "9.6.24").
func serverMajor(v string) int {
	end := 0
	for end < len(v) && '0' <= v[end] && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

func (s *side) close() error { return s.std.Close() }

// abandon closes a connection whose server stopped answering, at once:
// its socket first, so that no goodbye waits on a silent peer.
func (s *side) abandon() {
	s.pg.Conn().Close()
	s.std.Close()
}

func (s *side) broken() bool { return s.pgx.IsClosed() }

// bind prepares sql and encodes args for it.
func (s *side) bind(ctx context.Context, sql string, args []any) (*stmt, error) {
	st, err := s.prepare(ctx, sql)
	if err != nil {
		return nil, err
	}
	if len(st.sd.ParamOIDs) != len(args) {
		return nil, fmt.Errorf("expected %d arguments, got %d", len(st.sd.ParamOIDs), len(args))
	}
	if err := s.eqb.Build(s.pgx.TypeMap(), st.sd, args); err != nil {
		return nil, err
	}
	return st, nil
}

// query runs a statement and returns its rows, first row preloaded. A
// statement whose cached plan went stale runs again, prepared afresh, when
// nothing was executed.
func (s *side) query(ctx context.Context, sql string, args []any) (*rows, error) {
	retry := s.idle()
	r, err := s.queryOnce(ctx, sql, args)
	if err != nil && retry && staleStatement(err) {
		r, err = s.queryOnce(ctx, sql, args)
	}
	return r, err
}

func (s *side) queryOnce(ctx context.Context, sql string, args []any) (*rows, error) {
	mode := s.modeFor(ctx)
	if mode != pgx.QueryExecModeCacheStatement {
		if err := s.flushStale(ctx); err != nil {
			return nil, err
		}
	}
	switch mode {
	case pgx.QueryExecModeCacheStatement:
	case pgx.QueryExecModeSimpleProtocol:
		return s.querySimple(ctx, sql, args)
	default:
		return s.queryUnnamed(ctx, mode, sql, args)
	}
	st, err := s.bind(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	if s.capturesReplay() {
		return s.queryReplay(ctx, sql, st.convert, func(p *pgconn.Pipeline) {
			p.SendQueryStatement(st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
		})
	}
	rr := s.pg.ExecStatement(ctx, st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
	r := newRows(rr, s.pgx.TypeMap(), st.convert, func(_ pgconn.CommandTag, err error) error {
		s.forget(sql, err)
		return err
	})
	if err := r.preload(); err != nil {
		return nil, err
	}
	return r, nil
}

// queryReplay runs the statement send queues and, after it in the same
// round trip, the replay query (replay.go), and returns the statement's
// rows, first row preloaded.
func (s *side) queryReplay(ctx context.Context, sql string, convert []valueFunc, send func(*pgconn.Pipeline)) (*rows, error) {
	p := s.pg.StartPipeline(ctx)
	send(p)
	sendReplay(p)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, err
	}
	return s.pipelineRows(p, sql, convert, true)
}

// pipelineRows returns the rows of the statement p runs next, first row
// preloaded; their end reads the rest of p: the replay query's result when
// replay says it was queued (it is skipped when the statement failed), then
// the Sync.
func (s *side) pipelineRows(p *pgconn.Pipeline, sql string, convert []valueFunc, replay bool) (*rows, error) {
	res, err := p.GetResults()
	rr, ok := res.(*pgconn.ResultReader)
	if err != nil || !ok {
		if err == nil {
			err = unexpected("query result", res, nil)
		}
		s.forget(sql, err)
		closeAfterWait(p, nil)
		return nil, err
	}
	r := newRows(rr, s.pgx.TypeMap(), convert, func(_ pgconn.CommandTag, err error) error {
		if replay && err == nil {
			err = s.pipelineReplay(p)
		}
		if res, syncErr := p.GetResults(); err == nil && (syncErr != nil || !isSync(res)) {
			err = unexpected("sync after the query", res, syncErr)
		}
		if closeErr := p.Close(); err == nil {
			err = closeErr
		}
		s.forget(sql, err)
		return err
	})
	if err := r.preload(); err != nil {
		return nil, err
	}
	return r, nil
}

// exec runs a statement and returns its command tag, running it again as
// query does when its cached plan went stale.
func (s *side) exec(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	retry := s.idle()
	tag, err := s.execOnce(ctx, sql, args)
	if err != nil && retry && staleStatement(err) {
		tag, err = s.execOnce(ctx, sql, args)
	}
	return tag, err
}

func (s *side) execOnce(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	switch mode := s.modeFor(ctx); mode {
	case pgx.QueryExecModeCacheStatement:
	case pgx.QueryExecModeSimpleProtocol:
		return s.execSimple(ctx, sql, args)
	default:
		return s.execUnnamed(ctx, mode, sql, args)
	}
	st, err := s.bind(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := s.pg.ExecStatement(ctx, st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats).Close()
	s.forget(sql, err)
	return tag, err
}

// execScript runs several statements through the simple protocol and returns
// the last one's command tag.
func (s *side) execScript(ctx context.Context, sql string) (pgconn.CommandTag, error) {
	results, err := s.pg.Exec(ctx, sql).ReadAll()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if len(results) == 0 {
		return pgconn.CommandTag{}, nil
	}
	return results[len(results)-1].CommandTag, nil
}

// simple runs SQL without parameters through the simple protocol, for
// transaction control.
func (s *side) simple(ctx context.Context, sql string) error {
	_, err := s.pg.Exec(ctx, sql).ReadAll()
	return err
}

// errRolledBack is what Commit returns when the server rolled the
// transaction back instead (it had failed earlier); it matches pgx's own.
var errRolledBack = pgx.ErrTxCommitRollback

// Wait statuses WAIT FOR LSN returns with NO_THROW.
const (
	waitSuccess         = "success"
	waitTimeout         = "timeout"
	waitNotInRecovery   = "not in recovery"
	waitStatusMalformed = ""
)

// waitSQL formats the WAIT FOR LSN statement. The LSN is a literal (the
// server does not take a parameter there) built from a parsed value, never
// from caller text.
func waitSQL(target lsn.LSN, timeoutMS int64) string {
	b := make([]byte, 0, 80)
	b = append(b, "WAIT FOR LSN '"...)
	b = target.AppendText(b)
	b = append(b, "' WITH (TIMEOUT "...)
	b = strconv.AppendInt(b, timeoutMS, 10)
	b = append(b, ", NO_THROW)"...)
	return string(b)
}

// waitQuery sends WAIT FOR LSN and the query in one round trip. When the
// wait succeeds it returns the query's rows; otherwise it drains the query's
// result and returns only the status. The query goes as its exec mode says
// (modes.go).
//
// A statement the connection has not prepared (or, in cache_describe and
// describe_exec, described) yet is prepared in the wait's round trip, after
// the wait (before it, the replica may not know the tables it names yet),
// and run in a second one. A statement whose cached plan went stale (the
// replica replayed a schema change) is prepared again and run again,
// without waiting again: the wait succeeded.
func (s *side) waitQuery(ctx context.Context, target lsn.LSN, timeoutMS int64, sql string, args []any) (string, *rows, error) {
	var send func(p *pgconn.Pipeline)
	var convert []valueFunc
	mode := s.modeFor(ctx)
	if mode != pgx.QueryExecModeCacheStatement {
		if err := s.flushStale(ctx); err != nil {
			return "", nil, err
		}
	}
	switch mode {
	case pgx.QueryExecModeSimpleProtocol:
		return s.waitQuerySimple(ctx, target, timeoutMS, sql, args)
	case pgx.QueryExecModeCacheStatement:
		st := s.lookup(sql)
		if st == nil {
			status, err := s.waitPrepare(ctx, target, timeoutMS, sql)
			if err != nil || status != waitSuccess {
				return status, nil, err
			}
			r, err := s.query(ctx, sql, args)
			return status, r, err
		}
		if len(st.sd.ParamOIDs) != len(args) {
			return "", nil, fmt.Errorf("expected %d arguments, got %d", len(st.sd.ParamOIDs), len(args))
		}
		if err := s.eqb.Build(s.pgx.TypeMap(), st.sd, args); err != nil {
			return "", nil, err
		}
		send = func(p *pgconn.Pipeline) {
			p.SendQueryStatement(st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
		}
		convert = st.convert
	default:
		sd, known := s.knownDescription(mode, sql)
		if !known {
			status, sd, err := s.waitDescribe(ctx, mode, target, timeoutMS, sql)
			if err != nil || status != waitSuccess {
				return status, nil, err
			}
			u, err := s.bindUnnamed(sd, sql, args, true)
			if err != nil {
				s.forget(sql, err)
				return status, nil, err
			}
			r, err := s.runUnnamed(ctx, u)
			return status, r, err
		}
		u, err := s.bindUnnamed(sd, sql, args, true)
		if err != nil {
			s.forget(sql, err)
			return "", nil, err
		}
		send = u.send
	}
	retry := s.idle()
	replay := s.capturesReplay()
	p, status, err := s.sendAfterWait(ctx, target, timeoutMS, func(p *pgconn.Pipeline) {
		send(p)
		if replay {
			sendReplay(p)
		}
	})
	if p == nil {
		return status, nil, err
	}
	r, err := s.pipelineRows(p, sql, convert, replay)
	if err != nil {
		return s.retryAfterWait(ctx, retry, status, sql, args, err)
	}
	return status, r, nil
}

// retryAfterWait runs a query whose wait succeeded again, without waiting,
// when it failed only because its cached plan went stale.
func (s *side) retryAfterWait(ctx context.Context, retry bool, status, sql string, args []any, err error) (string, *rows, error) {
	if !retry || !staleStatement(err) || s.broken() || !s.idle() {
		return status, nil, err
	}
	r, err := s.query(ctx, sql, args)
	return status, r, err
}

// waitPrepare sends WAIT FOR LSN and, after it, prepares sql, in one round
// trip.
func (s *side) waitPrepare(ctx context.Context, target lsn.LSN, timeoutMS int64, sql string) (string, error) {
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams(waitSQL(target, timeoutMS), nil, nil, nil, nil)
	closes := s.sendPrepare(p, sql)
	if err := p.Sync(); err != nil {
		p.Close()
		return "", err
	}
	status, err := readWaitStatus(p)
	if err != nil {
		return status, closeAfterWait(p, err)
	}
	// The prepare ran whatever the wait's status; keep what it made.
	_, prepErr := s.readPrepare(p, sql, closes)
	if status != waitSuccess {
		return status, closeAfterWait(p, nil)
	}
	if prepErr != nil {
		p.Close()
		return status, prepErr
	}
	if res, err := p.GetResults(); err != nil || !isSync(res) {
		p.Close()
		return status, unexpected("sync after prepare", res, err)
	}
	return status, p.Close()
}

// sendAfterWait sends WAIT FOR LSN and, after it, what send queues, in one
// round trip, and reads the wait's status. Unless the wait succeeded, the
// pipeline is closed and nil returned, with the status or the error.
func (s *side) sendAfterWait(ctx context.Context, target lsn.LSN, timeoutMS int64, send func(*pgconn.Pipeline)) (*pgconn.Pipeline, string, error) {
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams(waitSQL(target, timeoutMS), nil, nil, nil, nil)
	send(p)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, "", err
	}
	status, err := readWaitStatus(p)
	if err != nil || status != waitSuccess {
		return nil, status, closeAfterWait(p, err)
	}
	return p, status, nil
}

// closeAfterWait closes a pipeline whose wait did not succeed. The statement
// after the wait may fail (its tables may not exist yet on a replica that is
// behind): only a broken connection is worth reporting.
func closeAfterWait(p *pgconn.Pipeline, err error) error {
	closeErr := p.Close()
	if err == nil && closeErr != nil {
		var pgErr *pgconn.PgError
		if !errors.As(closeErr, &pgErr) {
			err = closeErr
		}
	}
	return err
}

func readWaitStatus(p *pgconn.Pipeline) (string, error) {
	res, err := p.GetResults()
	if err != nil {
		return "", err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return "", unexpected("WAIT FOR LSN result", res, nil)
	}
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

// beginWait opens a transaction on a replica with WAIT FOR LSN as its first
// statement, in one round trip, and returns the wait's status. When the wait
// did not succeed the transaction is rolled back.
func (s *side) beginWait(ctx context.Context, begin string, target lsn.LSN, timeoutMS int64) (string, error) {
	mrr := s.pg.Exec(ctx, begin+"; "+waitSQL(target, timeoutMS))
	status := waitStatusMalformed
	n := 0
	for mrr.NextResult() {
		n++
		rr := mrr.ResultReader()
		for rr.NextRow() {
			if v := rr.Values(); n == 2 && len(v) == 1 {
				status = string(v[0])
			}
		}
		rr.Close()
	}
	if err := mrr.Close(); err != nil {
		if s.pg.TxStatus() != 'I' {
			s.simple(ctx, "ROLLBACK")
		}
		return "", err
	}
	if status != waitSuccess {
		if err := s.simple(ctx, "ROLLBACK"); err != nil {
			return "", err
		}
	}
	return status, nil
}

// waitOnly sends WAIT FOR LSN alone and returns its status.
func (s *side) waitOnly(ctx context.Context, target lsn.LSN, timeoutMS int64) (string, error) {
	res := s.pg.ExecParams(ctx, waitSQL(target, timeoutMS), nil, nil, nil, nil).Read()
	if res.Err != nil {
		return "", res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return "", unexpected("WAIT FOR LSN status", res, nil)
	}
	return string(res.Rows[0][0]), nil
}

// replayLSN returns pg_last_wal_replay_lsn(), and false when the server is
// not in recovery.
func (s *side) replayLSN(ctx context.Context) (lsn.LSN, bool, error) {
	res := s.pg.ExecParams(ctx, "SELECT pg_last_wal_replay_lsn()::text", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, false, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, false, fmt.Errorf("pgwait: pg_last_wal_replay_lsn() returned %d rows", len(res.Rows))
	}
	if res.Rows[0][0] == nil {
		return 0, false, nil
	}
	l, err := lsn.Parse(string(res.Rows[0][0]))
	return l, true, err
}

func isSync(res any) bool {
	_, ok := res.(*pgconn.PipelineSync)
	return ok
}

func unexpected(what string, res any, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("pgwait: protocol: expected %s, got %T", what, res)
}

// poll waits for the replica to replay target by polling
// pg_last_wal_replay_lsn() with backoff, for servers without WAIT FOR LSN.
func (s *side) poll(ctx context.Context, target lsn.LSN, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	delay := 200 * time.Microsecond
	for {
		replayed, inRecovery, err := s.replayLSN(ctx)
		switch {
		case err != nil:
			return "", err
		case !inRecovery:
			return waitNotInRecovery, nil
		case replayed >= target:
			return waitSuccess, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return waitTimeout, nil
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// identify reads which primary this is: its system identifier, its current
// timeline and WAL position. Sent as two pipelined queries so that a role
// not allowed to read pg_control_system() still gets the timeline (its
// system is then "unknown", and only timeline changes are noticed). Failing
// to read the timeline is an error: failover detection must not be off
// silently.
func (s *side) identify(ctx context.Context) (tracker.Epoch, error) {
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), pg_current_wal_insert_lsn()::text", nil, nil, nil, nil)
	p.SendPipelineSync()
	p.SendQueryParams("SELECT system_identifier::text FROM pg_control_system()", nil, nil, nil, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return tracker.Epoch{}, err
	}
	var first, second []string
	var err error
	first, err = readRow(p, 2)
	if err == nil {
		if res, syncErr := p.GetResults(); syncErr != nil || !isSync(res) {
			err = unexpected("sync after the timeline", res, syncErr)
		}
	}
	if err == nil {
		var pgErr *pgconn.PgError
		if second, err = readRow(p, 1); errors.As(err, &pgErr) {
			second, err = []string{"unknown"}, nil // not allowed to read pg_control_system()
		}
	}
	if closeErr := p.Close(); err == nil {
		var pgErr *pgconn.PgError
		if !errors.As(closeErr, &pgErr) {
			err = closeErr
		}
	}
	if err != nil {
		return tracker.Epoch{}, err
	}
	tli, err := strconv.ParseUint(first[0], 16, 32)
	if err != nil {
		return tracker.Epoch{}, fmt.Errorf("pgwait: timeline %q: %w", first[0], err)
	}
	start, err := lsn.Parse(first[1])
	if err != nil {
		return tracker.Epoch{}, err
	}
	return tracker.Epoch{System: second[0], Timeline: uint32(tli), Start: start}, nil
}

// readRow reads a pipelined query's result of one row of n text columns.
func readRow(p *pgconn.Pipeline, n int) ([]string, error) {
	res, err := p.GetResults()
	if err != nil {
		return nil, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return nil, unexpected("a row", res, nil)
	}
	var row []string
	for rr.NextRow() {
		row = row[:0]
		for _, v := range rr.Values() {
			row = append(row, string(v))
		}
	}
	if _, err := rr.Close(); err != nil {
		return nil, err
	}
	if len(row) != n {
		return nil, fmt.Errorf("pgwait: protocol: expected a row of %d columns, got %d", n, len(row))
	}
	return row, nil
}
