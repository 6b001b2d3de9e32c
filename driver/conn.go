package driver

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
	"github.com/pgwait/pgwait/internal/lsn"
)

// Conn is one database/sql connection: a server connection to the primary
// and, once a read needs it, one to a replica. database/sql uses a Conn from
// one goroutine at a time.
type Conn struct {
	c       *Connector
	primary *side
	replica *side // the replica side used last
	sides   map[*replica]*side
	tx      *Tx

	// gen is the connector's failover generation the LSNs below belong to.
	gen int64
	// lastWrite is the LSN of this connection's latest write.
	lastWrite lsn.LSN
	// seen is a position this connection has read at: later reads never go
	// to a replica behind it (monotonic reads).
	seen lsn.LSN
	// session holds the session-level SET statements run on this
	// connection, replayed on server connections opened later.
	session []sessionSetting
	// classified caches what the classifier said of recent statements:
	// applications send the same few texts over and over.
	classified map[string]classify.Result
}

// classifyCacheSize bounds a connection's classification cache.
const classifyCacheSize = 512

// classify classifies a statement, from the cache when it can.
func (c *Conn) classify(query string) classify.Result {
	if r, ok := c.classified[query]; ok {
		return r
	}
	r := classify.Classify(query)
	if c.classified == nil || len(c.classified) >= classifyCacheSize {
		c.classified = make(map[string]classify.Result, 64)
	}
	c.classified[query] = r
	return r
}

type sessionSetting struct{ key, sql string }

// Primary returns the primary's *pgx.Conn, opening it if needed. Use it inside
// sql.Conn.Raw; do not keep it past the Raw call.
func (c *Conn) Primary(ctx context.Context) (*pgx.Conn, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	return s.pgx, nil
}

// Replica returns the *pgx.Conn of this connection's replica, opening it if
// needed. Use it inside sql.Conn.Raw; do not keep it past the Raw call.
func (c *Conn) Replica(ctx context.Context) (*pgx.Conn, error) {
	s, err := c.replicaSide(ctx, 0)
	if err != nil {
		return nil, err
	}
	return s.pgx, nil
}

func (c *Conn) primarySide(ctx context.Context) (*side, error) {
	if c.primary != nil {
		if c.primary.broken() {
			return nil, sqldriver.ErrBadConn
		}
		return c.primary, nil
	}
	dc, err := c.c.primary.Connect(ctx)
	if err != nil {
		return nil, err
	}
	s := newSide(dc.(*stdlib.Conn), nil)
	if err := c.replaySession(ctx, s); err != nil {
		s.close()
		return nil, err
	}
	if len(c.c.replicas) > 0 {
		c.c.observePrimary(s.identify(ctx))
	}
	c.primary = s
	return s, nil
}

// replicaSide returns the connection to the replica that should serve a read
// that must see target, opening it if needed.
func (c *Conn) replicaSide(ctx context.Context, target lsn.LSN) (*side, error) {
	var current *replica
	if c.replica != nil {
		current = c.replica.rep
	}
	for range len(c.c.replicas) {
		rep := c.c.replicaFor(current, target)
		if rep == nil {
			return nil, pgwait.ErrNoReplica
		}
		if s := c.sides[rep]; s != nil {
			if !s.broken() {
				c.replica = s
				return s, nil
			}
			c.dropSide(s)
		}
		dc, err := rep.connector.Connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			c.c.stats.replicaErrors.Add(1)
			c.c.eject(rep, 0)
			continue
		}
		s := newSide(dc.(*stdlib.Conn), rep)
		if err := c.replaySession(ctx, s); err != nil {
			s.close()
			return nil, err
		}
		if c.sides == nil {
			c.sides = map[*replica]*side{}
		}
		c.sides[rep] = s
		c.replica = s
		return s, nil
	}
	return nil, pgwait.ErrNoReplica
}

// dropSide closes a replica connection that failed.
func (c *Conn) dropSide(s *side) {
	s.close()
	delete(c.sides, s.rep)
	if c.replica == s {
		c.replica = nil
	}
}

func (c *Conn) replaySession(ctx context.Context, s *side) error {
	for _, set := range c.session {
		if err := s.simple(ctx, set.sql); err != nil {
			return fmt.Errorf("pgwait: replaying %q on a new server connection: %w", set.sql, err)
		}
	}
	return nil
}

// Close closes the connection's server connections.
func (c *Conn) Close() error {
	var err error
	if c.primary != nil {
		err = c.primary.close()
	}
	for _, s := range c.sides {
		s.close()
	}
	return err
}

// Prepare returns a statement that prepares itself on whichever server runs
// it, on first use there.
func (c *Conn) Prepare(query string) (sqldriver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a statement; see Prepare.
func (c *Conn) PrepareContext(_ context.Context, query string) (sqldriver.Stmt, error) {
	return &Stmt{conn: c, query: query}, nil
}

// Begin starts a read-write transaction on the primary.
func (c *Conn) Begin() (sqldriver.Tx, error) {
	return c.BeginTx(context.Background(), sqldriver.TxOptions{})
}

// Ping checks the primary.
func (c *Conn) Ping(ctx context.Context) error {
	s, err := c.primarySide(ctx)
	if err != nil {
		return err
	}
	return s.std.Ping(ctx)
}

// CheckNamedValue accepts every argument: pgx converts them.
func (c *Conn) CheckNamedValue(*sqldriver.NamedValue) error { return nil }

// ResetSession is called before database/sql reuses the connection.
func (c *Conn) ResetSession(ctx context.Context) error {
	if c.primary == nil || c.primary.broken() {
		return sqldriver.ErrBadConn
	}
	if err := c.primary.std.ResetSession(ctx); err != nil {
		return err
	}
	for _, s := range c.sides {
		if err := s.std.ResetSession(ctx); err != nil {
			c.dropSide(s) // reads reopen one; nothing of the session is lost
		}
	}
	return nil
}

// IsValid reports whether database/sql may reuse the connection.
func (c *Conn) IsValid() bool {
	return c.primary != nil && !c.primary.broken()
}

// ExecContext runs a statement that returns no rows.
func (c *Conn) ExecContext(ctx context.Context, query string, named []sqldriver.NamedValue) (sqldriver.Result, error) {
	query, args, err := arguments(ctx, query, named)
	if err != nil {
		return nil, err
	}
	if c.tx != nil {
		return c.tx.exec(ctx, query, args)
	}
	cls := c.classify(query)
	switch {
	case cls.Kind == classify.Session:
		return c.setSession(ctx, query, args)
	case isScript(cls, args):
		return c.execScript(ctx, cls, query)
	case c.toReplica(ctx, cls):
		r, err := c.read(ctx, query, args)
		if err != nil {
			return nil, err
		}
		return drain(r)
	}
	return c.execPrimary(ctx, cls, query, args)
}

// QueryContext runs a statement that returns rows.
func (c *Conn) QueryContext(ctx context.Context, query string, named []sqldriver.NamedValue) (sqldriver.Rows, error) {
	query, args, err := arguments(ctx, query, named)
	if err != nil {
		return nil, err
	}
	if c.tx != nil {
		return c.tx.query(ctx, query, args)
	}
	cls := c.classify(query)
	if cls.Kind == classify.Session {
		if _, err := c.setSession(ctx, query, args); err != nil {
			return nil, err
		}
		return noRows{}, nil
	}
	if c.toReplica(ctx, cls) {
		return c.read(ctx, query, args)
	}
	return c.queryPrimary(ctx, cls, query, args)
}

// toReplica decides whether a statement outside a transaction goes to a
// replica.
func (c *Conn) toReplica(ctx context.Context, cls classify.Result) bool {
	if len(c.c.replicas) == 0 || c.primaryInBlock() {
		return false
	}
	route := pgwait.RouteFrom(ctx)
	switch cls.Hint {
	case classify.Primary:
		route = pgwait.RoutePrimary
	case classify.Replica:
		route = pgwait.RouteReplica
	}
	switch route {
	case pgwait.RoutePrimary:
		return false
	case pgwait.RouteReplica:
		return cls.Kind == classify.Read || cls.Query
	}
	return cls.Kind == classify.Read
}

// primaryInBlock reports whether the primary is inside a transaction block
// opened with SQL (BEGIN through Exec) rather than BeginTx: everything then
// stays on the primary until it ends.
func (c *Conn) primaryInBlock() bool {
	return c.primary != nil && c.primary.pg.TxStatus() != 'I'
}

// captures reports whether a statement on the primary commits something whose
// LSN reads must wait for. A handle without replicas reads from the primary
// and needs no LSN, unless the context carries a token to advance.
func (c *Conn) captures(ctx context.Context, cls classify.Result) bool {
	if len(c.c.replicas) == 0 && pgwait.TokenFrom(ctx) == nil {
		return false
	}
	inBlock := c.primaryInBlock()
	switch cls.Kind {
	case classify.Write:
		return !inBlock
	case classify.Transaction:
		return inBlock // COMMIT, END, PREPARE TRANSACTION ...
	}
	return false
}

// isScript reports a text of several statements without arguments, which
// cannot be prepared and runs through the simple protocol, as with pgx.
func isScript(cls classify.Result, args []any) bool {
	return cls.Statements > 1 && len(args) == 0
}

// execScript runs a script on the primary (scripts of reads too: they are
// rare, and run whole in one place).
func (c *Conn) execScript(ctx context.Context, cls classify.Result, query string) (sqldriver.Result, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if !c.captures(ctx, cls) {
		tag, err := s.execScript(ctx, query)
		c.tracePrimary(query, false, 0, err)
		return result(tag, err)
	}
	tag, l, err := s.execScriptCapture(ctx, query)
	if err == nil && l != 0 {
		c.committed(ctx, l)
	}
	c.tracePrimary(query, true, l, err)
	return result(tag, err)
}

func (c *Conn) execPrimary(ctx context.Context, cls classify.Result, query string, args []any) (sqldriver.Result, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if !c.captures(ctx, cls) {
		if cls.Kind == classify.Read {
			c.c.stats.primaryReads.Add(1)
		}
		tag, err := s.exec(ctx, query, args)
		c.tracePrimary(query, false, 0, err)
		return result(tag, err)
	}
	tag, l, err := s.execCapture(ctx, captureShapeOf(cls), query, args)
	if err == nil {
		c.committed(ctx, l)
		dropsStatements(s, cls)
	}
	c.tracePrimary(query, true, l, err)
	return result(tag, err)
}

func (c *Conn) queryPrimary(ctx context.Context, cls classify.Result, query string, args []any) (sqldriver.Rows, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if !c.captures(ctx, cls) {
		var r *rows
		if cls.Kind == classify.Read {
			r, err = c.queryPrimaryRead(ctx, query, args)
		} else {
			r, err = s.query(ctx, query, args)
		}
		c.tracePrimary(query, false, 0, err)
		return wrapRows(r, err)
	}
	r, err := s.queryCapture(ctx, captureShapeOf(cls), query, args, func(l lsn.LSN, err error) {
		if err == nil {
			c.committed(ctx, l)
		}
		c.tracePrimary(query, true, l, err)
	})
	return wrapRows(r, err)
}

func (c *Conn) tracePrimary(query string, write bool, l lsn.LSN, err error) {
	if c.c.cfg.Tracer != nil {
		c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerPrimary, Addr: pgwait.Addr(c.c.cfg.Primary), Write: write, Committed: pgwait.LSN(l), Err: err})
	}
}

// dropsStatements resets a connection's statement caches after DISCARD or
// DEALLOCATE, which drop prepared statements on the server.
func dropsStatements(s *side, cls classify.Result) {
	if cls.Reason == "DISCARD statement" || cls.Reason == "DEALLOCATE statement" {
		s.resetStatements()
	}
}

// captureShapeOf chooses how a write's LSN is captured: inside BEGIN ...
// COMMIT (one flush) for a single data statement, else after a separate Sync.
func captureShapeOf(cls classify.Result) captureShape {
	if cls.DML && cls.Statements == 1 {
		return inBlock
	}
	return separateSync
}

// committed records a write's commit LSN everywhere reads look for it.
func (c *Conn) committed(ctx context.Context, l lsn.LSN) {
	c.c.stats.writes.Add(1)
	c.syncGen()
	c.lastWrite = lsn.Max(c.lastWrite, l)
	c.c.observeWrite(l)
	if t := pgwait.TokenFrom(ctx); t != nil {
		t.AdvanceOn(c.c.currentEpoch().timeline, pgwait.LSN(l))
	}
}

// syncGen sets aside what the connection remembers from before a failover:
// positions past the new primary's start may never exist on it.
func (c *Conn) syncGen() {
	gen := c.c.gen.Load()
	if gen == c.gen {
		return
	}
	c.gen = gen
	start := c.c.currentEpoch().start
	c.lastWrite = min(c.lastWrite, start)
	c.seen = min(c.seen, start)
}

// target is the LSN a read made with ctx must see, by the handle's scope,
// and never less than what the connection already read at.
func (c *Conn) target(ctx context.Context) lsn.LSN {
	c.syncGen()
	t := c.tokenTarget(ctx)
	switch c.c.cfg.Scope {
	case pgwait.ScopeToken:
		return lsn.Max(t, c.seen)
	case pgwait.ScopeConn:
		return lsn.Max(lsn.Max(t, c.lastWrite), c.seen)
	}
	handle := lsn.Max(lsn.LSN(c.c.highWater.Load()), lsn.LSN(c.c.seen.Load()))
	return lsn.Max(lsn.Max(lsn.Max(t, c.lastWrite), c.seen), handle)
}

// observed records a position a read saw: later reads must not see less.
func (c *Conn) observed(l lsn.LSN) {
	c.seen = lsn.Max(c.seen, l)
	raise(&c.c.seen, l)
}

// tokenTarget is the context token's LSN; a token from before the current
// primary's timeline counts only up to the new primary's start.
func (c *Conn) tokenTarget(ctx context.Context) lsn.LSN {
	tok := pgwait.TokenFrom(ctx)
	if tok == nil {
		return 0
	}
	l, tli := tok.Position()
	if e := c.c.currentEpoch(); tli != 0 && e.timeline != 0 && tli < e.timeline {
		return min(lsn.LSN(l), e.start)
	}
	return lsn.LSN(l)
}

// waitBudget is the server-side TIMEOUT of a wait: the configured wait
// timeout, cut so that the server answers before ctx's deadline (pgx closes
// a connection whose context ends mid-query). ok is false when no useful
// time is left.
func (c *Conn) waitBudget(ctx context.Context) (ms int64, ok bool) {
	d := c.c.cfg.WaitTimeout
	if deadline, has := ctx.Deadline(); has {
		left := time.Until(deadline)
		left -= left/10 + 2*time.Millisecond
		d = min(d, left)
	}
	ms = d.Milliseconds()
	return ms, ms >= 1
}

// read runs a read-only statement on a replica, waiting for the scope's LSN
// in the same round trip when the replica may be behind, and falls back as
// the policy says.
func (c *Conn) read(ctx context.Context, query string, args []any) (sqldriver.Rows, error) {
	target := c.target(ctx)
	s, err := c.replicaSide(ctx, target)
	if err != nil {
		return c.fallback(ctx, query, args, fallbackNoReplica, err, waitInfo{})
	}
	rep := s.rep
	if target <= lsn.LSN(rep.replayed.Load()) {
		if target != 0 {
			c.c.stats.waitsSkipped.Add(1)
		}
		r, err := s.query(ctx, query, args)
		return c.replicaDone(ctx, s, query, args, r, err, waitInfo{target: target})
	}
	ms, ok := c.waitBudget(ctx)
	if !ok {
		return c.waitFailed(ctx, query, args, s, waitInfo{target: target, status: waitTimeout})
	}
	c.c.stats.waits.Add(1)
	start := time.Now()
	w := waitInfo{target: target, ms: ms}
	var r *rows
	if c.usePolling(s) {
		w.status, err = s.poll(ctx, target, time.Duration(ms)*time.Millisecond)
		if err == nil && w.status == waitSuccess {
			r, err = s.query(ctx, query, args)
		}
	} else {
		w.status, r, err = s.waitQuery(ctx, target, ms, query, args)
	}
	w.took = time.Since(start)
	c.c.stats.observeWait(w.took)
	if err == nil && w.status != waitSuccess {
		return c.waitFailed(ctx, query, args, s, w)
	}
	if w.status == waitSuccess {
		rep.confirm(target)
	}
	return c.replicaDone(ctx, s, query, args, r, err, w)
}

// waitInfo is what a read's wait did, for fallbacks and tracing.
type waitInfo struct {
	target lsn.LSN
	ms     int64
	status string
	took   time.Duration
}

// Fallback reasons, as Event.Fallback reports them.
const (
	fallbackTimeout   = "timeout"
	fallbackPromoted  = "promoted"
	fallbackError     = "replica error"
	fallbackNoReplica = "no replica"
	fallbackReadOnly  = "read-only violation"
)

func (c *Conn) usePolling(s *side) bool {
	switch c.c.cfg.WaitMethod {
	case pgwait.WaitPoll:
		return true
	case pgwait.WaitForLSN:
		return false
	}
	return s.major < 19
}

func (c *Conn) waitFailed(ctx context.Context, query string, args []any, s *side, w waitInfo) (sqldriver.Rows, error) {
	switch w.status {
	case waitTimeout:
		// A replica that lags more than the whole wait timeout gets no reads
		// until a probe finds it caught up. A wait the context cut short
		// says less about the replica: it stays.
		c.c.stats.waitTimeouts.Add(1)
		if w.ms >= c.c.cfg.WaitTimeout.Milliseconds() {
			c.c.eject(s.rep, w.target)
		}
		if c.c.cfg.OnTimeout == pgwait.TimeoutFail {
			err := &pgwait.WaitTimeoutError{Replica: s.rep.addr, LSN: pgwait.LSN(w.target), Timeout: time.Duration(w.ms) * time.Millisecond}
			c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, WaitedFor: pgwait.LSN(w.target), Waited: w.took, WaitStatus: w.status, Err: err})
			return nil, err
		}
		return c.fallback(ctx, query, args, fallbackTimeout, nil, w)
	case waitNotInRecovery:
		// The replica was promoted: it no longer follows the primary.
		c.c.stats.promotions.Add(1)
		c.c.eject(s.rep, 0)
		c.dropSide(s)
		return c.fallback(ctx, query, args, fallbackPromoted, nil, w)
	}
	return nil, fmt.Errorf("pgwait: WAIT FOR LSN on replica %s answered %q; expected success, timeout or not in recovery", s.rep.addr, w.status)
}

// replicaDone finishes a replica read: counts it, or sends it to the primary
// when the replica refused it as a write (25006) or failed.
func (c *Conn) replicaDone(ctx context.Context, s *side, query string, args []any, r *rows, err error, w waitInfo) (sqldriver.Rows, error) {
	if err == nil {
		c.c.stats.replicaReads.Add(1)
		c.observed(lsn.Max(w.target, lsn.LSN(s.rep.replayed.Load())))
		c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, WaitedFor: pgwait.LSN(waitedFor(w)), Waited: w.took, WaitStatus: w.status})
		return r, nil
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "25006":
		// read_only_sql_transaction: the replica refused before writing
		// anything, so the primary may run it, as the write it is.
		c.c.stats.readOnlyRetries.Add(1)
		c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, Fallback: fallbackReadOnly, Err: err})
		return c.queryPrimary(ctx, classify.Result{Kind: classify.Write}, query, args)
	case ctx.Err() != nil:
		if s.broken() {
			c.dropSide(s)
		}
		return nil, err
	case s.broken():
		// The replica went away. A read is safe to run again: on the primary.
		c.c.stats.replicaErrors.Add(1)
		c.c.eject(s.rep, 0)
		c.dropSide(s)
		return c.fallback(ctx, query, args, fallbackError, err, w)
	}
	c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, WaitedFor: pgwait.LSN(waitedFor(w)), Waited: w.took, WaitStatus: w.status, Err: err})
	return nil, err
}

// waitedFor is the LSN a read waited for, or 0 when it did not wait.
func waitedFor(w waitInfo) lsn.LSN {
	if w.status == "" {
		return 0
	}
	return w.target
}

// fallback runs a read meant for a replica on the primary, unless the policy
// says to fail.
func (c *Conn) fallback(ctx context.Context, query string, args []any, reason string, cause error, w waitInfo) (sqldriver.Rows, error) {
	if ctx.Err() != nil {
		if cause != nil {
			return nil, cause
		}
		return nil, ctx.Err()
	}
	if reason == fallbackNoReplica && c.c.cfg.NoReplica == pgwait.NoReplicaFail {
		err := pgwait.ErrNoReplica
		if cause != nil && !errors.Is(cause, pgwait.ErrNoReplica) {
			err = fmt.Errorf("%w: %w", pgwait.ErrNoReplica, cause)
		}
		return nil, err
	}
	c.c.stats.fallbacks.Add(1)
	r, err := c.queryPrimaryRead(ctx, query, args)
	if c.c.cfg.Tracer != nil {
		c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerPrimary, Addr: pgwait.Addr(c.c.cfg.Primary),
			WaitedFor: pgwait.LSN(waitedFor(w)), Waited: w.took, WaitStatus: w.status, Fallback: reason, Err: err})
	}
	return wrapRows(r, err)
}

// queryPrimaryRead runs a read on the primary. With replicas, it reads the
// primary's WAL position after the query in the same round trip: later reads
// on a replica wait for it, so they never see less than this one did.
func (c *Conn) queryPrimaryRead(ctx context.Context, query string, args []any) (*rows, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	c.c.stats.primaryReads.Add(1)
	if len(c.c.replicas) == 0 || c.primaryInBlock() {
		return s.query(ctx, query, args)
	}
	return s.queryCapture(ctx, afterRead, query, args, func(l lsn.LSN, err error) {
		if err == nil {
			c.observed(l)
		}
	})
}

func (c *Conn) trace(e pgwait.Event) {
	if t := c.c.cfg.Tracer; t != nil {
		t.TraceStatement(e)
	}
}

// setSession runs a session-level SET or RESET on every open server
// connection and remembers it for those opened later.
func (c *Conn) setSession(ctx context.Context, query string, args []any) (sqldriver.Result, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	tag, err := s.exec(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		for _, rs := range c.sides {
			if _, err := rs.exec(ctx, query, nil); err != nil {
				c.dropSide(rs)
			}
		}
	}
	if len(args) == 0 {
		c.rememberSession(query)
	}
	return result(tag, nil)
}

// rememberSession keeps the latest SET of each setting, in order; RESET ALL
// forgets them all.
func (c *Conn) rememberSession(query string) {
	key := sessionKey(query)
	if key == "all" {
		c.session = c.session[:0]
		return
	}
	for i, s := range c.session {
		if s.key == key {
			c.session = append(c.session[:i], c.session[i+1:]...)
			break
		}
	}
	c.session = append(c.session, sessionSetting{key: key, sql: query})
}

// sessionKey names the setting a SET or RESET statement changes, lower case:
// "search_path" for "SET SESSION search_path TO app". Best effort: an
// unusual form keys on its whole text, which only means it is kept along
// with the others.
func sessionKey(query string) string {
	f := strings.Fields(strings.ToLower(strings.ReplaceAll(query, "=", " = ")))
	for len(f) > 0 && (f[0] == "set" || f[0] == "reset" || f[0] == "session") {
		f = f[1:]
	}
	if len(f) == 0 {
		return query
	}
	return strings.TrimSuffix(f[0], ";")
}

// arguments turns database/sql arguments into pgx arguments, applying a pgx
// QueryRewriter (such as pgx.NamedArgs) passed as the first one.
func arguments(ctx context.Context, query string, named []sqldriver.NamedValue) (string, []any, error) {
	args := make([]any, len(named))
	for i, nv := range named {
		args[i] = nv.Value
	}
	if len(args) == 0 {
		return query, args, nil
	}
	switch opt := args[0].(type) {
	case pgx.QueryRewriter:
		q, a, err := opt.RewriteQuery(ctx, nil, query, args[1:])
		if err != nil {
			return "", nil, fmt.Errorf("rewrite query failed: %w", err)
		}
		return q, a, nil
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
		return "", nil, fmt.Errorf("pgwait: pgx option %T is not supported as a query argument; pgwait chooses the protocol itself", opt)
	}
	return query, args, nil
}

func result(tag pgconn.CommandTag, err error) (sqldriver.Result, error) {
	if err != nil {
		return nil, retryable(err)
	}
	return sqldriver.RowsAffected(tag.RowsAffected()), nil
}

// wrapRows keeps a nil *rows from becoming a non-nil interface.
func wrapRows(r *rows, err error) (sqldriver.Rows, error) {
	if err != nil {
		return nil, retryable(err)
	}
	return r, nil
}

// retryable turns an error that happened before anything reached the server
// into driver.ErrBadConn, on which database/sql retries on another
// connection, as pgx stdlib does. Any other error stands: a statement that
// may have reached the server is never retried.
func retryable(err error) error {
	if pgconn.SafeToRetry(err) {
		return sqldriver.ErrBadConn
	}
	return err
}

// drain reads a read's rows for Exec and reports how many there were.
func drain(r sqldriver.Rows) (sqldriver.Result, error) {
	dest := make([]sqldriver.Value, len(r.Columns()))
	var n int64
	for {
		err := r.Next(dest)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			return nil, err
		}
		n++
	}
	if err := r.Close(); err != nil {
		return nil, err
	}
	return sqldriver.RowsAffected(n), nil
}

// noRows is the empty result of a SET sent through Query.
type noRows struct{}

func (noRows) Columns() []string            { return nil }
func (noRows) Close() error                 { return nil }
func (noRows) Next([]sqldriver.Value) error { return io.EOF }

// isolation maps database/sql isolation levels to SQL.
func beginSQL(opts sqldriver.TxOptions) (string, error) {
	b := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		b += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		b += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		b += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable:
		b += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", fmt.Errorf("pgwait: isolation level %v is not supported by PostgreSQL", sql.IsolationLevel(opts.Isolation))
	}
	if opts.ReadOnly {
		b += " READ ONLY"
	}
	return b, nil
}
