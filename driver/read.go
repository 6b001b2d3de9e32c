package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
	"github.com/pgwait/pgwait/internal/tracker"
)

// The read path: a read outside a transaction goes to a replica, which
// first waits, in the same round trip, for what the read must see; it falls
// back to the primary as the policies say. The read-only BEGIN path
// (tx.go) shares the target and the wait.

// target is what a read made with ctx must see. A token ahead of every
// position the tracker has seen from the primary is checked against the
// primary's current position first; one still ahead, or on a timeline the
// primary does not have, was not issued by this cluster's history: it is
// reset to the primary's position, and the read waits for that instead.
func (c *Conn) target(ctx context.Context) tracker.Target {
	tok := pgwait.TokenFrom(ctx)
	var pos tracker.Token
	if tok != nil {
		l, tli := tok.Position()
		pos = tracker.Token{Present: l != 0, LSN: tracker.LSN(l), Timeline: tli}
	}
	tg := c.c.track.Target(c.session, pos, false)
	if tg.Verdict == tracker.TokenUnverified && c.learnPrimaryPosition(ctx) == nil {
		tg = c.c.track.Target(c.session, pos, true)
	}
	if tg.Verdict == tracker.TokenClamped {
		c.c.stats.tokensReset.Add(1)
		tok.Set(pgwait.LSN(tg.Clamp.LSN), tg.Clamp.Timeline)
	}
	return tg
}

// waitInfo is what a read's wait did, for fallbacks and tracing.
type waitInfo struct {
	target tracker.LSN
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

func (c *Conn) usePolling(s *side) bool {
	switch c.c.cfg.WaitMethod {
	case pgwait.WaitPoll:
		return true
	case pgwait.WaitForLSN:
		return false
	}
	return s.major < 19
}

// wait makes replica s catch up to tg before it serves: run sends the wait
// (and what follows it in the same round trip) with a server-side timeout
// of ms milliseconds and returns the wait's status. It is the one wait
// routine of reads and read-only transactions: it keeps the counts and
// tells the tracker what the replica answered (caught up; behind; promoted).
func (c *Conn) wait(ctx context.Context, s *side, tg tracker.Target, run func(ms int64) (string, error)) (waitInfo, error) {
	w := waitInfo{target: tg.LSN}
	ms, ok := c.waitBudget(ctx)
	if !ok {
		c.c.stats.waitTimeouts.Add(1)
		s.rep.status.waitTimeouts.Add(1)
		w.status = waitTimeout
		return w, nil
	}
	w.ms = ms
	c.c.stats.waits.Add(1)
	s.rep.status.waits.Add(1)
	start := time.Now()
	status, err := run(ms)
	w.took, w.status = time.Since(start), status
	c.c.stats.observeWait(w.took)
	switch status {
	case waitSuccess:
		c.c.track.Confirmed(s.rep.index, tg.LSN)
	case waitTimeout:
		c.c.stats.waitTimeouts.Add(1)
		s.rep.status.waitTimeouts.Add(1)
		// Only a wait that ran the whole wait timeout, for a position the
		// primary really reached, says the replica is behind.
		full := ms >= c.c.cfg.WaitTimeout.Milliseconds()
		if c.c.track.WaitTimedOut(s.rep.index, tg.LSN, full, tg.Verified) {
			c.c.stats.ejections.Add(1)
		}
	case waitNotInRecovery:
		// Promoted: it no longer follows the primary.
		c.c.stats.promotions.Add(1)
		c.eject(s.rep, tracker.Promoted)
		c.dropSide(s)
	default:
		if err == nil {
			err = fmt.Errorf("pgwait: WAIT FOR LSN on replica %s answered %q; expected success, timeout or not in recovery", s.rep.addr, status)
		}
	}
	return w, err
}

// timeoutError is the error a read whose wait timed out returns, or nil
// when the policy sends it to the primary.
func (c *Conn) timeoutError(s *side, w waitInfo) error {
	if c.c.cfg.OnTimeout != pgwait.TimeoutFail {
		return nil
	}
	return &pgwait.WaitTimeoutError{Replica: s.rep.addr, LSN: pgwait.LSN(w.target), Timeout: time.Duration(w.ms) * time.Millisecond}
}

// read runs a read-only statement on a replica, waiting for the scope's LSN
// in the same round trip when the replica may be behind, and falls back as
// the policy says.
func (c *Conn) read(ctx context.Context, query string, args []any) (sqldriver.Rows, error) {
	tg := c.target(ctx)
	s, err := c.replicaSide(ctx, tg.LSN)
	if err != nil {
		return c.fallback(ctx, query, args, fallbackNoReplica, err, waitInfo{})
	}
	if !c.c.track.NeedsWait(s.rep.index, tg.LSN) {
		if tg.LSN != 0 {
			c.c.stats.waitsSkipped.Add(1)
		}
		r, err := s.query(ctx, query, args)
		return c.replicaDone(ctx, s, query, args, r, err, waitInfo{target: tg.LSN})
	}
	var r *rows
	w, err := c.wait(ctx, s, tg, func(ms int64) (status string, err error) {
		if c.usePolling(s) {
			status, err = s.poll(ctx, tg.LSN, time.Duration(ms)*time.Millisecond)
			if err == nil && status == waitSuccess {
				r, err = s.query(ctx, query, args)
			}
			return status, err
		}
		status, r, err = s.waitQuery(ctx, tg.LSN, ms, query, args)
		return status, err
	})
	switch {
	case err == nil && w.status == waitTimeout:
		if err := c.timeoutError(s, w); err != nil {
			c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, WaitedFor: pgwait.LSN(w.target), Waited: w.took, WaitStatus: w.status, Err: err})
			return nil, err
		}
		s.rep.status.fallbacks.Add(1)
		return c.fallback(ctx, query, args, fallbackTimeout, nil, w)
	case err == nil && w.status == waitNotInRecovery:
		s.rep.status.fallbacks.Add(1)
		return c.fallback(ctx, query, args, fallbackPromoted, nil, w)
	}
	return c.replicaDone(ctx, s, query, args, r, err, w)
}

// replicaDone finishes a replica read: records it, or sends it to the
// primary when the replica refused it as a write (25006) or failed.
func (c *Conn) replicaDone(ctx context.Context, s *side, query string, args []any, r *rows, err error, w waitInfo) (sqldriver.Rows, error) {
	if err == nil {
		c.c.stats.replicaReads.Add(1)
		s.rep.status.reads.Add(1)
		c.c.track.ReplicaRead(c.session, s.rep.index, w.target)
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
		return c.queryPrimary(ctx, classify.Result{Kind: classify.Write, Reason: "refused by a replica", Statements: 1}, query, args)
	case ctx.Err() != nil:
		if s.broken() {
			c.dropSide(s)
		}
		return nil, err
	case s.broken():
		// The replica went away. A read is safe to run again: on the primary.
		c.c.stats.replicaErrors.Add(1)
		s.rep.status.failed(err)
		s.rep.status.fallbacks.Add(1)
		c.eject(s.rep, tracker.Failed)
		c.dropSide(s)
		return c.fallback(ctx, query, args, fallbackError, err, w)
	}
	c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, WaitedFor: pgwait.LSN(waitedFor(w)), Waited: w.took, WaitStatus: w.status, Err: err})
	return nil, err
}

// waitedFor is the LSN a read waited for, or 0 when it did not wait.
func waitedFor(w waitInfo) tracker.LSN {
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
