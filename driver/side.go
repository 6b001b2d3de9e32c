package driver

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// stmtCacheSize bounds the statements a side keeps prepared, like pgx's own
// statement cache.
const stmtCacheSize = 512

// A side is one server connection of a pgwait connection: to the primary or
// to one replica. It is opened through pgx stdlib and then driven at the
// pgconn level, so that a write and its LSN capture, or a WAIT FOR LSN and
// its query, share one round trip.
type side struct {
	std *stdlib.Conn
	pgx *pgx.Conn
	pg  *pgconn.PgConn
	rep *replica // nil on the primary side

	stmts map[string]*list.Element // SQL -> *stmt in lru
	lru   list.List                // front: most recently used
	eqb   pgx.ExtendedQueryBuilder

	// capture holds what LSN capture prepares on a primary connection.
	capture captureStmts
	major   int // server major version
}

// stmt is a statement prepared on one side, with its column converters.
type stmt struct {
	sd      *pgconn.StatementDescription
	formats []int16
	convert []valueFunc
}

func newSide(std *stdlib.Conn, rep *replica) *side {
	s := &side{std: std, pgx: std.Conn(), pg: std.Conn().PgConn(), rep: rep, stmts: map[string]*list.Element{}}
	s.major = serverMajor(s.pg.ParameterStatus("server_version"))
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

// prepare returns the statement for sql, preparing it on first use.
func (s *side) prepare(ctx context.Context, sql string) (*stmt, error) {
	if st := s.lookup(sql); st != nil {
		return st, nil
	}
	if err := s.makeRoom(ctx); err != nil {
		return nil, err
	}
	name := stmtName(sql)
	sd, err := s.pg.Prepare(ctx, name, sql, nil)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P05" {
		// duplicate_prepared_statement: a statement this cache forgot (its
		// plan went stale) is still on the server. Replace it.
		if err := s.pg.Deallocate(ctx, name); err != nil {
			return nil, err
		}
		sd, err = s.pg.Prepare(ctx, name, sql, nil)
	}
	if err != nil {
		return nil, err
	}
	return s.remember(sd), nil
}

// lookup returns the cached statement for sql, or nil.
func (s *side) lookup(sql string) *stmt {
	e, ok := s.stmts[sql]
	if !ok {
		return nil
	}
	s.lru.MoveToFront(e)
	return e.Value.(*stmt)
}

// makeRoom deallocates the least recently used statement when the cache is
// full.
func (s *side) makeRoom(ctx context.Context) error {
	if s.lru.Len() < stmtCacheSize {
		return nil
	}
	oldest := s.lru.Back()
	st := oldest.Value.(*stmt)
	if err := s.pg.Deallocate(ctx, st.sd.Name); err != nil {
		return err
	}
	s.lru.Remove(oldest)
	delete(s.stmts, st.sd.SQL)
	return nil
}

// remember caches a statement the server prepared.
func (s *side) remember(sd *pgconn.StatementDescription) *stmt {
	st := &stmt{sd: sd, formats: make([]int16, len(sd.Fields))}
	fields := make([]pgconn.FieldDescription, len(sd.Fields))
	for i, f := range sd.Fields {
		st.formats[i] = resultFormats[f.DataTypeOID]
		fields[i] = f
		fields[i].Format = st.formats[i]
	}
	st.convert = valueFuncs(s.pgx.TypeMap(), fields)
	s.stmts[sd.SQL] = s.lru.PushFront(st)
	return st
}

// stmtName names a statement after its text, as pgx's statement cache does.
func stmtName(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return "pgwait_" + hex.EncodeToString(sum[:12])
}

// resetStatements forgets every statement this connection prepared, after
// DISCARD or DEALLOCATE dropped them on the server; they are prepared again
// on next use.
func (s *side) resetStatements() {
	s.stmts = map[string]*list.Element{}
	s.lru.Init()
	s.capture = captureStmts{}
}

// forget drops a cached statement the server no longer has, or whose result
// type changed, so that the next use prepares it again.
func (s *side) forget(sql string, err error) {
	if err == nil {
		return
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return
	}
	if pgErr.Code == "26000" || pgErr.Code == "0A000" && pgErr.Message == "cached plan must not change result type" {
		if e, ok := s.stmts[sql]; ok {
			s.lru.Remove(e)
			delete(s.stmts, sql)
		}
	}
}

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

// query runs a statement and returns its rows, first row preloaded.
func (s *side) query(ctx context.Context, sql string, args []any) (*rows, error) {
	st, err := s.bind(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rr := s.pg.ExecStatement(ctx, st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
	r := newRows(rr, s.pgx.TypeMap(), st.convert, nil)
	if err := r.preload(); err != nil {
		s.forget(sql, err)
		return nil, err
	}
	return r, nil
}

// exec runs a statement and returns its command tag.
func (s *side) exec(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
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
// result and returns only the status.
//
// A statement the connection has not prepared yet is prepared in the wait's
// round trip, after the wait (before it, the replica may not know the tables
// it names yet), and run in a second one.
func (s *side) waitQuery(ctx context.Context, target lsn.LSN, timeoutMS int64, sql string, args []any) (string, *rows, error) {
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
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams(waitSQL(target, timeoutMS), nil, nil, nil, nil)
	p.SendQueryStatement(st.sd, s.eqb.ParamValues, s.eqb.ParamFormats, st.formats)
	if err := p.Sync(); err != nil {
		p.Close()
		return "", nil, err
	}
	status, err := readWaitStatus(p)
	if err != nil || status != waitSuccess {
		return status, nil, closeAfterWait(p, err)
	}
	res, err := p.GetResults()
	rr, ok := res.(*pgconn.ResultReader)
	if err != nil || !ok {
		if err == nil {
			err = unexpected("query result", res, nil)
		}
		s.forget(sql, err)
		p.Close()
		return status, nil, err
	}
	r := newRows(rr, s.pgx.TypeMap(), st.convert, func(_ pgconn.CommandTag, err error) error {
		s.forget(sql, err)
		if res, syncErr := p.GetResults(); err == nil && (syncErr != nil || !isSync(res)) {
			err = unexpected("sync after the query", res, syncErr)
		}
		if closeErr := p.Close(); err == nil {
			err = closeErr
		}
		return err
	})
	if err := r.preload(); err != nil {
		return status, nil, err
	}
	return status, r, nil
}

// waitPrepare sends WAIT FOR LSN and, after it, prepares sql, in one round
// trip.
func (s *side) waitPrepare(ctx context.Context, target lsn.LSN, timeoutMS int64, sql string) (string, error) {
	if err := s.makeRoom(ctx); err != nil {
		return "", err
	}
	p := s.pg.StartPipeline(ctx)
	p.SendQueryParams(waitSQL(target, timeoutMS), nil, nil, nil, nil)
	p.SendPrepare(stmtName(sql), sql, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return "", err
	}
	status, err := readWaitStatus(p)
	if err != nil {
		return status, closeAfterWait(p, err)
	}
	// The prepare ran whatever the wait's status; keep what it made.
	res, prepErr := p.GetResults()
	if sd, ok := res.(*pgconn.StatementDescription); ok && prepErr == nil {
		sd.Name, sd.SQL = stmtName(sql), sql
		s.remember(sd)
	}
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

// currentLSN reads the primary's current WAL position, mapped as captures
// are.
func (s *side) currentLSN(ctx context.Context) (lsn.LSN, error) {
	if err := s.prepareCapture(ctx); err != nil {
		return 0, err
	}
	return s.readLSN(s.pg.ExecStatement(ctx, s.capture.lsn, nil, nil, nil))
}
