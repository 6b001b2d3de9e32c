package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// plan is what a read made with ctx must see, by its consistency level,
// and how far behind its replica may be (0: any). Eventual and bounded
// reads wait for nothing; a Global read waits for the primary's current
// position, which it learns first (over the health checker's connection,
// shared by concurrent reads): without it the read cannot be guaranteed,
// and fails.
func (c *Conn) plan(ctx context.Context) (tg tracker.Target, maxStale time.Duration, err error) {
	switch l := c.level(ctx); {
	case l.IsEventual():
		return tracker.Target{Verified: true}, 0, nil
	case l.IsBounded():
		return tracker.Target{Verified: true}, l.Staleness(), nil
	case l.IsGlobal():
		if err := c.learnPrimaryPosition(ctx); err != nil {
			return tracker.Target{}, 0, fmt.Errorf("pgwait: a Global read needs the primary's current WAL position, which could not be read (is the primary down? read with another level meanwhile): %w", err)
		}
		tg = c.target(ctx)
		tg.LSN = max(tg.LSN, c.c.track.PrimaryPosition())
		return tg, 0, nil
	}
	return c.target(ctx), 0, nil
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
	fallbackConflict  = "recovery conflict"
	fallbackSilent    = "replica timeout"
)

// waitBudget is the server-side TIMEOUT of a wait: the configured wait
// timeout, cut so that the server answers before ctx's deadline (pgx closes
// a connection whose context ends mid-query), with a fifth of the time left
// and 5 ms kept for the round trip and the query (a loaded machine needs
// more than a tenth). ok is false when no useful time is left.
func (c *Conn) waitBudget(ctx context.Context) (ms int64, ok bool) {
	d := c.c.cfg.WaitTimeout
	if deadline, has := ctx.Deadline(); has {
		left := time.Until(deadline)
		left -= left/5 + 5*time.Millisecond
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
		c.promoted(s.rep)
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
// the policy says; exclude lists replicas this read already tried.
func (c *Conn) read(ctx context.Context, query string, args []any, exclude ...int) (sqldriver.Rows, error) {
	tg, maxStale, err := c.plan(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.replicaSide(ctx, tg.LSN, maxStale, exclude)
	if err != nil {
		reason := fallbackNoReplica
		if len(exclude) > 0 {
			reason = fallbackConflict
		}
		return c.fallback(ctx, query, args, reason, err, waitInfo{})
	}
	if !c.c.track.NeedsWait(s.rep.index, tg.LSN) {
		if tg.LSN != 0 {
			c.c.stats.waitsSkipped.Add(1)
		}
		b := c.watchReplica(s, 0)
		r, err := s.query(ctx, query, args)
		err = lateConflict(r, err)
		if b.stop() {
			return c.replicaSilent(ctx, s, query, args, r, waitInfo{target: tg.LSN})
		}
		return c.replicaDone(ctx, s, query, args, r, err, waitInfo{target: tg.LSN}, exclude)
	}
	var r *rows
	var b *replicaBound
	w, err := c.wait(ctx, s, tg, func(ms int64) (status string, err error) {
		b = c.watchReplica(s, time.Duration(ms)*time.Millisecond)
		defer b.stop()
		if c.usePolling(s) {
			status, err = s.poll(ctx, tg.LSN, time.Duration(ms)*time.Millisecond)
			if err == nil && status == waitSuccess {
				r, err = s.query(ctx, query, args)
				err = lateConflict(r, err)
			}
			return status, err
		}
		status, r, err = s.waitQuery(ctx, tg.LSN, ms, query, args)
		return status, lateConflict(r, err)
	})
	switch {
	case b != nil && b.stop():
		return c.replicaSilent(ctx, s, query, args, r, w)
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
	return c.replicaDone(ctx, s, query, args, r, err, w, exclude)
}

// replicaSilent handles a replica that let its bound pass (watchReplica):
// its connection is abandoned, it leaves the rotation, and the read runs
// on the primary (a read is safe to repeat).
func (c *Conn) replicaSilent(ctx context.Context, s *side, query string, args []any, r *rows, w waitInfo) (sqldriver.Rows, error) {
	if r != nil {
		r.Close()
	}
	c.wentSilent(s)
	return c.fallback(ctx, query, args, fallbackSilent, errReplicaSilent, w)
}

// wentSilent gives up on replica s, which let a round trip's bound pass
// (watchReplica): its connection is abandoned, and it leaves the rotation.
func (c *Conn) wentSilent(s *side) {
	c.c.stats.replicaTimeouts.Add(1)
	c.c.stats.replicaErrors.Add(1)
	s.abandon()
	c.eject(s.rep, tracker.Failed)
	c.dropSide(s)
}

// errReplicaSilent is the cause of a fallback from a replica that stopped
// answering.
var errReplicaSilent = errors.New("pgwait: the replica did not answer within pgwait_replica_timeout")

// replicaBound watches the round trips to one replica connection
// (watchReplica), one at a time: each side keeps one, and its timer, for
// all its round trips.
type replicaBound struct {
	c  *Conn
	s  *side
	mu sync.Mutex
	// timer is the bound's timer, armed by each watch. A firing meant for
	// an earlier watch (it ran while that one stopped) finds deadline ahead
	// and arms the timer again.
	timer    *time.Timer
	d        time.Duration // the replica timeout
	since    time.Time     // the last sign of life
	deadline time.Time     // when the bound passes
	done     bool          // the round trip ended
	fired    bool          // the bound passed: the connection's deadline was set
}

// watchReplica bounds a round trip to replica s that includes a wait of up
// to wait: if the replica has not answered within wait plus the replica
// timeout, and answered no health probe in the last replica timeout
// either, the connection's deadline is set to now, so that the round trip
// fails at once; stop reports that. A replica that keeps answering probes
// is slow, not sick: its round trip gets another replica timeout.
func (c *Conn) watchReplica(s *side, wait time.Duration) *replicaBound {
	b := s.bound
	if b == nil {
		b = &replicaBound{c: c, s: s}
		s.bound = b
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.d = c.c.cfg.ReplicaTimeout
	b.since, b.deadline = now, now.Add(wait+b.d)
	b.done, b.fired = false, false
	if b.timer == nil {
		b.timer = time.AfterFunc(wait+b.d, b.fire)
	} else {
		b.timer.Reset(wait + b.d)
	}
	return b
}

func (b *replicaBound) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	now := time.Now()
	if left := b.deadline.Sub(now); left > 0 {
		b.timer.Reset(left) // meant for an earlier watch
		return
	}
	if b.c.c.health.aliveSince(b.s.rep, b.since) {
		b.since, b.deadline = now, now.Add(b.d)
		b.timer.Reset(b.d)
		return
	}
	b.fired = true
	b.s.pg.Conn().SetDeadline(now)
}

// stop ends the watch and reports whether the bound passed. It may be
// called more than once, until the side's next watch.
func (b *replicaBound) stop() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	b.timer.Stop()
	return b.fired
}

// isRecoveryConflict reports an error a hot standby raises when replaying
// WAL cancels a query (ProcessInterrupts in PostgreSQL's postgres.c): most
// conflicts as serialization_failure (40001), a buffer-pin deadlock as
// deadlock_detected (40P01), a dropped database as database_dropped (57P04),
// each with "conflict with recovery" in the message.
func isRecoveryConflict(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01", "57P04":
		return strings.Contains(pgErr.Message, "conflict with recovery")
	}
	return false
}

// lateConflict reads a replica read's result past its first row before it
// is handed out (rows.readAhead) and returns the recovery conflict that
// cancelled the statement there, if one did: a one-row read cancelled after
// its row was sent is then retried like one cancelled before (replicaDone),
// instead of failing at Close with a row already scanned. A conflict later
// in a longer result reaches the caller, as rows already handed out cannot
// be taken back. Any other error stays with the rows, after the first row,
// as pgx stdlib reports it.
func lateConflict(r *rows, err error) error {
	if err != nil || r == nil {
		return err
	}
	if late := r.readAhead(); isRecoveryConflict(late) {
		return late
	}
	return nil
}

// replicaDone finishes a replica read: records it, or sends it elsewhere
// when the replica refused it as a write (25006: to the primary), cancelled
// it for a recovery conflict (to another replica, or the primary), or
// failed (to the primary).
func (c *Conn) replicaDone(ctx context.Context, s *side, query string, args []any, r *rows, err error, w waitInfo, exclude []int) (sqldriver.Rows, error) {
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
	case isRecoveryConflict(err):
		// Replay cancelled the read; a read is safe to run again, on another
		// replica (this one stays in rotation: conflicts are transient).
		c.c.stats.recoveryConflicts.Add(1)
		c.trace(pgwait.Event{SQL: query, Server: pgwait.ServerReplica, Addr: s.rep.addr, WaitedFor: pgwait.LSN(waitedFor(w)), Waited: w.took, WaitStatus: w.status, Fallback: fallbackConflict, Err: err})
		if s.broken() {
			c.dropSide(s)
		}
		return c.read(ctx, query, args, append(exclude, s.rep.index)...)
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
	if (reason == fallbackNoReplica || reason == fallbackConflict) && c.c.cfg.NoReplica == pgwait.NoReplicaFail {
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
