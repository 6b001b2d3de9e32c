package driver

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// The statement cache of one side (server connection). It follows the rules
// of pgx's own statement cache (pgx conn.go, internal/stmtcache):
//
//   - a statement is named after its text and prepared on first use;
//   - a statement whose execution failed, for whatever reason, is
//     invalidated: forgotten here, and deallocated on the server at the head
//     of the next preparation's round trip (as pgx does before its next
//     query), in a state where that cannot fail (outside a failed
//     transaction block);
//   - DISCARD ALL and DEALLOCATE sent by the application invalidate
//     everything;
//   - the least recently used statement is deallocated when the cache is
//     full.
//
// Unlike pgx, every preparation closes its own name first, in the same round
// trip (closing a statement that does not exist is no error): whatever left a
// statement of that name on the server (an error mid-pipeline, a cache reset
// while the server kept it), the name can never be taken twice (42P05). And
// a statement that failed only because its cached plan went stale (0A000
// after a schema change, on the primary or replayed on a replica; 26000 after
// a DEALLOCATE pgwait did not see) is prepared again and run again when
// nothing was executed: outside a transaction block, before any row.

// stmtCacheSize bounds the statements a side keeps prepared, like pgx's own
// statement cache.
const stmtCacheSize = 512

// stmt is a statement prepared on one side, with its column converters.
type stmt struct {
	sd      *pgconn.StatementDescription
	formats []int16
	convert []valueFunc
}

// stmtCache is what a side knows of the statements it prepared.
type stmtCache struct {
	stmts map[string]*list.Element // SQL -> *stmt in lru
	lru   list.List                // front: most recently used
	// stale names statements forgotten here that the server may still
	// hold; they are deallocated with the next preparation.
	stale []string
}

// stmtName names a statement after its text, as pgx's statement cache does.
func stmtName(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return "pgwait_" + hex.EncodeToString(sum[:12])
}

// lookup returns the cached statement for sql, or nil.
func (s *side) lookup(sql string) *stmt {
	e, ok := s.cache.stmts[sql]
	if !ok {
		return nil
	}
	s.cache.lru.MoveToFront(e)
	return e.Value.(*stmt)
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
	if s.cache.stmts == nil {
		s.cache.stmts = map[string]*list.Element{}
	}
	if e, ok := s.cache.stmts[sd.SQL]; ok {
		s.cache.lru.Remove(e)
	}
	s.cache.stmts[sd.SQL] = s.cache.lru.PushFront(st)
	return st
}

// invalidate forgets the statement for sql; the server's copy is
// deallocated with the next preparation.
func (s *side) invalidate(sql string) {
	e, ok := s.cache.stmts[sql]
	if !ok {
		return
	}
	s.cache.lru.Remove(e)
	delete(s.cache.stmts, sql)
	s.cache.stale = append(s.cache.stale, e.Value.(*stmt).sd.Name)
}

// forget invalidates sql's statement after its execution failed, as pgx
// does after any error: the failure may come from a plan that no longer
// fits the schema, and the next use prepares it afresh.
func (s *side) forget(sql string, err error) {
	if err != nil {
		s.invalidate(sql)
		delete(s.described, sql)
	}
}

// resetStatements forgets every statement this connection prepared, after
// DISCARD ALL or DEALLOCATE ALL dropped them on the server, or DEALLOCATE
// dropped one of them (which are deallocated again: closing a missing
// statement is no error).
func (s *side) resetStatements(dropped bool) {
	if !dropped {
		for e := s.cache.lru.Front(); e != nil; e = e.Next() {
			s.cache.stale = append(s.cache.stale, e.Value.(*stmt).sd.Name)
		}
	} else {
		s.cache.stale = s.cache.stale[:0]
	}
	s.cache.stmts = map[string]*list.Element{}
	s.cache.lru.Init()
	s.capture = captureStmts{}
}

// staleStatement reports an error that says only that a cached statement no
// longer fits: its result type changed (0A000, after DDL) or the server no
// longer has it (26000). Both are raised before the statement executes.
func staleStatement(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "26000" || pgErr.Code == "0A000" && pgErr.Message == "cached plan must not change result type"
}

// idle reports whether the side is outside a transaction block: a statement
// that fails there leaves nothing behind, so it may be run again.
func (s *side) idle() bool { return s.pg.TxStatus() == 'I' }

// sendPrepare queues on p the deallocation of stale statements (and of the
// least recently used one when the cache is full) and the preparation of
// sql under its name, closed first. It returns how many closes it queued
// before the preparation's own; readPrepare reads their answers.
func (s *side) sendPrepare(p *pgconn.Pipeline, sql string) (closes int) {
	for s.cache.lru.Len() >= stmtCacheSize {
		oldest := s.cache.lru.Back()
		s.invalidate(oldest.Value.(*stmt).sd.SQL)
	}
	// pgx deallocates only in these states: in a failed transaction block
	// the preparation fails anyway, and the closes wait for the next one.
	if tx := s.pg.TxStatus(); tx == 'I' || tx == 'T' {
		for _, name := range s.cache.stale {
			p.SendDeallocate(name)
		}
		closes = len(s.cache.stale)
	}
	name := stmtName(sql)
	p.SendDeallocate(name)
	p.SendPrepare(name, sql, nil)
	return closes
}

// readPrepare reads what sendPrepare queued and caches the statement.
func (s *side) readPrepare(p *pgconn.Pipeline, sql string, closes int) (*stmt, error) {
	for i := 0; i <= closes; i++ {
		if _, err := p.GetResults(); err != nil {
			return nil, err
		}
	}
	s.cache.stale = s.cache.stale[closes:]
	res, err := p.GetResults()
	if err != nil {
		return nil, err
	}
	sd, ok := res.(*pgconn.StatementDescription)
	if !ok {
		return nil, unexpected("statement description", res, nil)
	}
	sd.Name, sd.SQL = stmtName(sql), sql
	return s.remember(sd), nil
}

// prepare returns the statement for sql, preparing it on first use, in one
// round trip with the deallocation of stale statements.
func (s *side) prepare(ctx context.Context, sql string) (*stmt, error) {
	if st := s.lookup(sql); st != nil {
		return st, nil
	}
	p := s.pg.StartPipeline(ctx)
	closes := s.sendPrepare(p, sql)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, err
	}
	st, err := s.readPrepare(p, sql, closes)
	if err == nil {
		if res, syncErr := p.GetResults(); syncErr != nil || !isSync(res) {
			err = unexpected("sync after prepare", res, syncErr)
		}
	}
	if closeErr := p.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		if st != nil {
			s.invalidate(sql)
		}
		return nil, err
	}
	return st, nil
}

// flushStale deallocates, in a round trip of its own, the statements
// forgotten here that the server may still hold. In cache_statement they go
// with the next preparation (sendPrepare); in the other exec modes no
// preparation may come, and a Stmt closed after it ran on a replica would
// stay there for the life of the connection.
func (s *side) flushStale(ctx context.Context) error {
	if len(s.cache.stale) == 0 {
		return nil
	}
	if tx := s.pg.TxStatus(); tx != 'I' && tx != 'T' {
		return nil // as sendPrepare: not in a failed transaction block
	}
	p := s.pg.StartPipeline(ctx)
	for _, name := range s.cache.stale {
		p.SendDeallocate(name)
	}
	if err := p.Sync(); err != nil {
		p.Close()
		return err
	}
	for range s.cache.stale {
		if _, err := p.GetResults(); err != nil {
			p.Close()
			return err
		}
	}
	s.cache.stale = s.cache.stale[:0]
	return p.Close()
}

// deallocate drops the statement for sql now, as pgx stdlib does when the
// last database/sql Stmt of it is closed.
func (s *side) deallocate(ctx context.Context, sql string) error {
	e, ok := s.cache.stmts[sql]
	if !ok {
		return nil
	}
	s.cache.lru.Remove(e)
	delete(s.cache.stmts, sql)
	if err := s.pg.Deallocate(ctx, e.Value.(*stmt).sd.Name); err != nil {
		s.cache.stale = append(s.cache.stale, e.Value.(*stmt).sd.Name)
		return err
	}
	return nil
}

// dropsAll reports DISCARD ALL and DEALLOCATE [PREPARE] ALL, after which the
// server holds no prepared statement of the session.
func dropsAll(query string) bool {
	f := strings.Fields(strings.ToLower(strings.TrimRight(strings.TrimSpace(query), "; \t\n")))
	switch {
	case len(f) == 2 && f[0] == "discard" && f[1] == "all":
		return true
	case len(f) == 2 && f[0] == "deallocate" && f[1] == "all":
		return true
	case len(f) == 3 && f[0] == "deallocate" && f[1] == "prepare" && f[2] == "all":
		return true
	}
	return false
}
