package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
	"github.com/pgwait/pgwait/internal/lsn"
)

// Statements on the primary, outside transactions opened with BeginTx, and
// the bookkeeping of the positions they report.

// execScript runs a script on the primary (scripts of reads too: they are
// rare, and run whole in one place).
func (c *Conn) execScript(ctx context.Context, cls classify.Result, query string) (sqldriver.Result, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if !c.captures(ctx, cls) {
		tag, err := s.execScript(ctx, query)
		c.afterPrimary(cls, query, err)
		c.tracePrimary(query, false, 0, err)
		return result(tag, err)
	}
	tag, l, err := s.execScriptCapture(ctx, query)
	c.afterPrimary(cls, query, err)
	if err == nil && l != 0 {
		c.answered(ctx, cls, l)
	}
	c.tracePrimary(query, cls.Kind != classify.Read, l, err)
	return result(tag, err)
}

// execPrimary runs a statement without rows on the primary.
func (c *Conn) execPrimary(ctx context.Context, cls classify.Result, query string, args []any) (sqldriver.Result, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if cls.Kind == classify.Read {
		c.c.stats.primaryReads.Add(1)
	}
	if !c.captures(ctx, cls) {
		tag, err := s.exec(ctx, query, args)
		c.afterPrimary(cls, query, err)
		c.tracePrimary(query, false, 0, err)
		return result(tag, err)
	}
	tag, l, err := s.execCapture(ctx, captureShapeOf(cls, s), query, args)
	c.afterPrimary(cls, query, err)
	if err == nil && l != 0 {
		c.answered(ctx, cls, l)
	}
	c.tracePrimary(query, cls.Kind != classify.Read, l, err)
	return result(tag, err)
}

// queryPrimary runs a statement with rows on the primary.
func (c *Conn) queryPrimary(ctx context.Context, cls classify.Result, query string, args []any) (sqldriver.Rows, error) {
	if cls.Kind == classify.Read {
		r, err := c.queryPrimaryRead(ctx, query, args)
		c.tracePrimary(query, false, 0, err)
		return wrapRows(r, err)
	}
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if !c.captures(ctx, cls) {
		r, err := s.query(ctx, query, args)
		c.afterPrimary(cls, query, err)
		c.tracePrimary(query, false, 0, err)
		return wrapRows(r, err)
	}
	r, err := s.queryCapture(ctx, captureShapeOf(cls, s), query, args, func(l lsn.LSN, err error) {
		c.afterPrimary(cls, query, err)
		if err == nil && l != 0 {
			c.answered(ctx, cls, l)
		}
		c.tracePrimary(query, true, l, err)
	})
	return wrapRows(r, err)
}

// queryPrimaryRead runs a read on the primary. With replicas, it reads the
// primary's WAL position after the read's commit, in the same round trip:
// later reads on a replica wait for it, so they never see less than this
// one did, and whatever the read may have written (a function can) is seen
// too.
func (c *Conn) queryPrimaryRead(ctx context.Context, query string, args []any) (*rows, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	c.c.stats.primaryReads.Add(1)
	cls := classify.Result{Kind: classify.Read, DML: true, Statements: 1}
	if !c.captures(ctx, cls) {
		return s.query(ctx, query, args)
	}
	return s.queryCapture(ctx, inBlock, query, args, func(l lsn.LSN, err error) {
		if err == nil && l != 0 {
			c.answered(ctx, cls, l)
		}
	})
}

// afterPrimary updates what the connection knows of its primary session
// after query ran there: its cached statements after DISCARD or DEALLOCATE,
// and whether the session now holds state replicas lack (session.go).
func (c *Conn) afterPrimary(cls classify.Result, query string, err error) {
	if err != nil {
		return
	}
	switch cls.Reason {
	case "DISCARD statement", "DEALLOCATE statement":
		c.primary.resetStatements(dropsAll(query))
		if isDiscardAll(query) {
			c.discarded()
		}
	}
	if cls.Pins && c.c.hasReplicas() {
		c.pin()
	}
}

func (c *Conn) tracePrimary(query string, write bool, l lsn.LSN, err error) {
	if c.c.cfg.Tracer != nil {
		c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerPrimary, Addr: pgwait.Addr(c.c.cfg.Primary), Write: write, Committed: pgwait.LSN(l), Err: err})
	}
}

func (c *Conn) trace(e pgwait.Event) {
	if t := c.c.cfg.Tracer; t != nil {
		t.TraceStatement(e)
	}
}

// captureShapeOf chooses how a statement's position is read after its
// commit: inside BEGIN ... COMMIT (one flush) for a single data statement
// or query in autocommit, else after a separate Sync.
func captureShapeOf(cls classify.Result, s *side) captureShape {
	if cls.DML && cls.Statements == 1 && s.pg.TxStatus() == 'I' {
		return inBlock
	}
	return separateSync
}

// answered records the position the primary reported after a statement of
// this connection committed (or, in a transaction block, ended), and
// advances the context's token to it.
func (c *Conn) answered(ctx context.Context, cls classify.Result, l lsn.LSN) {
	if cls.Kind != classify.Read {
		c.c.stats.writes.Add(1)
	}
	next := c.c.track.PrimaryAnswered(c.session, l, cls.Kind == classify.Read)
	if t := pgwait.TokenFrom(ctx); t != nil {
		t.AdvanceOn(next.Timeline, pgwait.LSN(next.LSN))
	}
	if cls.Kind != classify.Read {
		c.awaitVisible(ctx, l)
	}
}

// visibility is the number of replicas a write made with ctx waits for.
func (c *Conn) visibility(ctx context.Context) int {
	if n, ok := pgwait.VisibilityFrom(ctx); ok {
		return n
	}
	return c.c.cfg.WriteVisibility
}

// awaitVisible waits, after a commit at l, until as many replicas in
// rotation as the context asks for have replayed it: WAIT FOR LSN on each
// in turn (over this connection's replica connections), within the wait
// timeout in all, each round trip bounded as reads' are. Falling short is
// counted, not returned: the write committed.
func (c *Conn) awaitVisible(ctx context.Context, l lsn.LSN) {
	n := c.visibility(ctx)
	if n == 0 || !c.c.hasReplicas() {
		return
	}
	deadline := time.Now().Add(c.c.cfg.WaitTimeout)
	visible, inRotation := 0, 0
	for i, rep := range c.c.replicaList() {
		if !c.c.track.InRotation(i) {
			continue
		}
		inRotation++
		if visible >= n {
			break
		}
		if !c.c.track.NeedsWait(i, l) {
			visible++
			continue
		}
		ms := time.Until(deadline).Milliseconds()
		if budget, ok := c.waitBudget(ctx); ok {
			ms = min(ms, budget)
		}
		if ms < 1 {
			break
		}
		s, err := c.sideFor(ctx, rep)
		if err != nil {
			continue
		}
		b := c.watchReplica(s, time.Duration(ms)*time.Millisecond)
		var status string
		if c.usePolling(s) {
			status, err = s.poll(ctx, l, time.Duration(ms)*time.Millisecond)
		} else {
			status, err = s.waitOnly(ctx, l, ms)
		}
		if b.stop() {
			c.wentSilent(s)
			continue
		}
		if err == nil && status == waitSuccess {
			c.c.track.Confirmed(i, l)
			visible++
		}
	}
	if visible < min(n, max(inRotation, 1)) {
		c.c.stats.visibilityTimeouts.Add(1)
	}
}

// learnPrimaryPosition reads the primary's current WAL position, to verify
// a token ahead of everything the tracker has seen, within the replica
// timeout: over the health checker's connection, shared by concurrent
// callers, so that reads need no primary connection of their own.
func (c *Conn) learnPrimaryPosition(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.c.cfg.ReplicaTimeout)
	defer cancel()
	return c.c.health.primaryPosition(ctx)
}
