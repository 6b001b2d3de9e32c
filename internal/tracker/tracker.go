// Package tracker owns pgwait's consistency state: which WAL positions reads
// must see, what each replica is known to have replayed, which replicas are
// in rotation, and which primary (system, timeline) the positions belong to.
// It is the one place those rules live, in the manner of etcd's
// client/v3/ordering: one lock, positions that only ever come from what a
// server answered, and no I/O, so that every rule is unit-tested without a
// server.
//
// The driver asks it what a read must see (Target), which replica should
// serve it (Pick) and whether that replica must wait (NeedsWait), and tells
// it what the servers answered: a primary statement or commit ended at a
// position (PrimaryAnswered), a replica replayed at least a position
// (Confirmed, ReplicaRead), a wait timed out (WaitTimedOut), a replica failed
// or was promoted (Eject), a probe succeeded or failed (ProbeOK,
// ProbeFailed), a primary connection belongs to a given history
// (ObservePrimary).
package tracker

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/lsn"
)

// LSN is a WAL position.
type LSN = lsn.LSN

// Epoch identifies a primary's WAL history: a failover changes the system
// identifier (a rebuilt cluster) or the timeline (a promoted replica).
type Epoch struct {
	System   string
	Timeline uint32
	// Start is the primary's WAL position when pgwait first saw it: positions
	// remembered from an earlier history past it may never exist on it.
	Start LSN
}

// Config is what the tracker's rules depend on.
type Config struct {
	Scope    pgwait.Scope
	Balance  pgwait.Balance
	Replicas int
	// HealthInterval is the first backoff of an ejected replica; it doubles
	// with each failed probe in a row, up to MaxBackoff.
	HealthInterval time.Duration
	MaxBackoff     time.Duration
	// MaxLag, when set, keeps replicas measured more than MaxLag behind the
	// primary (Staleness, at each probe) out of every pick, until they are
	// back under three quarters of it (hysteresis, so that a replica at the
	// bound does not flap).
	MaxLag time.Duration
}

// Reason says why a replica left the rotation.
type Reason uint8

// Reasons a replica is out of rotation.
const (
	InRotation Reason = iota
	Failed            // a connection, statement or probe failed
	Promoted          // it is no longer in recovery
	Behind            // a wait for a position the primary had reached timed out
	Removed           // taken out of the replica set (Remove): for good
)

// String names the reason.
func (r Reason) String() string {
	return [...]string{"in rotation", "failed", "promoted", "behind", "removed"}[r]
}

// Tracker is the consistency state of one pgwait handle. It is safe for
// concurrent use; every method takes its one lock briefly and does no I/O.
type Tracker struct {
	cfg Config

	mu sync.Mutex
	// Invariants, under mu:
	//   - epoch is the latest primary history seen; gen counts its changes.
	//   - handle is the highest position any read or write through the
	//     handle saw or made on the current epoch; it only grows, except at a
	//     failover, where it is cut to the new epoch's Start.
	//   - primary is the highest position any server reported on the current
	//     epoch, hence at most the primary's real position: every target
	//     that is honoured as-is is at most primary (tokens above it are
	//     verified against the primary first, then clamped).
	//   - replicas[i].replayed is a position replica i reported having
	//     replayed on the current epoch (0: unknown); it is <= primary.
	epoch    Epoch
	gen      uint64
	handle   LSN
	primary  LSN
	replicas []replica
	next     int // round-robin cursor
	// samples are the primary's positions as probes read them, with when
	// (a ring, oldest overwritten first): they turn what a replica has
	// replayed into how far behind in time it is (staleness).
	samples [64]sample
	nsample int
	// lagExclusions counts the times a replica went past Config.MaxLag.
	lagExclusions uint64
}

// sample is the primary's position at a time.
type sample struct {
	at  time.Time
	pos LSN
}

// replica is what is known of one replica.
type replica struct {
	replayed LSN
	// seenAt is when replayed was last confirmed by a probe, and
	// incarnation what the probe said identifies the running server (its
	// start time): a restarted replica may be behind what it had replayed.
	seenAt      time.Time
	incarnation string
	reason      Reason    // InRotation while it serves reads
	since       time.Time // when it left the rotation
	retryAt     time.Time // when an ejected replica may be probed again
	needs       LSN       // what a replica out as Behind must replay to return
	fails       int       // failed probes in a row
	ejected     uint64    // times it left the rotation
	lagging     bool      // measured past Config.MaxLag, not yet back under
}

// New returns a tracker for cfg.
func New(cfg Config) *Tracker {
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = pgwait.DefaultHealthInterval
	}
	if cfg.MaxBackoff < cfg.HealthInterval {
		cfg.MaxBackoff = max(30*time.Second, cfg.HealthInterval)
	}
	return &Tracker{cfg: cfg, replicas: make([]replica, cfg.Replicas)}
}

// Add adds a replica to the set and returns its index. It starts out of
// rotation, due for a probe at once: the first successful probe brings it in.
func (t *Tracker) Add(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replicas = append(t.replicas, replica{reason: Failed, since: now, retryAt: now})
	return len(t.replicas) - 1
}

// Remove takes replica i out of the set for good: no read picks it again
// and no probe brings it back. Its index is never reused.
func (t *Tracker) Remove(i int, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.replicas[i]
	r.reason, r.since, r.replayed, r.lagging = Removed, now, 0, false
}

// Session is one pgwait connection's part of the state. The tracker guards
// it; a connection passes its own Session to the tracker's methods.
type Session struct {
	gen   uint64
	wrote LSN // positions the primary reported after this connection's statements
	seen  LSN // positions this connection's replica reads saw
	last  int // replica index used last, -1 for none
}

// NewSession returns a session for a new connection.
func (t *Tracker) NewSession() *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &Session{gen: t.gen, last: -1}
}

// syncLocked sets aside what s remembers from before a failover: positions
// past the new primary's start may never exist on it.
func (t *Tracker) syncLocked(s *Session) {
	if s.gen == t.gen {
		return
	}
	s.gen = t.gen
	s.wrote = min(s.wrote, t.epoch.Start)
	s.seen = min(s.seen, t.epoch.Start)
}

// Token is a consistency token's position as the tracker sees it.
type Token struct {
	Present  bool
	LSN      LSN
	Timeline uint32 // 0: unknown
}

// Verdict is what the tracker decided about a read's token.
type Verdict uint8

const (
	// TokenOK: the token's position is honoured as it is (or cut to the
	// current history's start, for a token from an earlier timeline).
	TokenOK Verdict = iota
	// TokenUnverified: the token is ahead of every position the tracker has
	// seen from the primary, or names a timeline it does not know; the caller
	// should learn the primary's current position (ObservePrimaryPosition)
	// and ask again. Target is still usable: the read may wait for it, but a
	// timeout it causes ejects no replica.
	TokenUnverified
	// TokenClamped: the token is ahead of the primary's current position, or
	// on a timeline the primary does not have: it was not issued by this
	// cluster's history (forged, or from a restored or rebuilt cluster).
	// Target uses the handle's position instead, and the caller should
	// reset the token to Clamp.
	TokenClamped
)

// Target is what one read must see.
type Target struct {
	LSN     LSN
	Verdict Verdict
	// Clamp is the position a TokenClamped token should be reset to.
	Clamp Token
	// Verified reports that LSN is at most a position the primary reported:
	// a replica that cannot reach it within the wait timeout is really
	// behind.
	Verified bool
}

// Target returns the position a read by s with token tok must see, by the
// handle's scope, never less than what s already saw (monotonic reads).
// verified says that the caller just learned the primary's position, so that
// a token still ahead of it is clamped rather than left unverified.
func (t *Tracker) Target(s *Session, tok Token, verified bool) Target {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.syncLocked(s)
	target := s.seen
	switch t.cfg.Scope {
	case pgwait.ScopeConn:
		target = max(target, s.wrote)
	case pgwait.ScopeHandle:
		target = max(target, s.wrote, t.handle)
	}
	res := Target{Verified: true}
	if !tok.Present || tok.LSN == 0 {
		res.LSN = target
		return res
	}
	l, tli := tok.LSN, tok.Timeline
	cur := t.epoch.Timeline
	switch {
	case tli != 0 && cur != 0 && tli < cur:
		// From an earlier timeline: the new primary kept at most its start.
		l = min(l, t.epoch.Start)
	case tli != 0 && cur != 0 && tli > cur, l > t.primary:
		// A timeline this primary does not know, or ahead of all it said.
		if !verified {
			res.Verdict, res.Verified = TokenUnverified, false
			break
		}
		// Reset it to the handle's position: a record end the primary
		// reported, cheap to wait for. (The primary's current insert
		// position may lie in a record not yet flushed, and waiting for it
		// can take the WAL writer's delay.) The token covers no write of
		// this history, so nothing is lost.
		res.Verdict = TokenClamped
		res.Clamp = Token{Present: true, LSN: t.handle, Timeline: cur}
		l = t.handle
	}
	res.LSN = max(target, l)
	return res
}

// ObservePrimaryPosition records a position the primary reported outside
// any session's statement (a probe of its current WAL position), at now.
func (t *Tracker) ObservePrimaryPosition(l LSN, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.primary = max(t.primary, l)
	t.samples[t.nsample%len(t.samples)] = sample{at: now, pos: l}
	t.nsample++
}

// stalenessLocked bounds how far behind the primary replica i was at now:
// it had replayed, when last probed, at least what the primary had at the
// latest sampled time its position was no further; so it has everything
// committed before that time, and its staleness is at most now minus that
// time. ok is false when nothing is known (no probe, or no sample old
// enough).
func (t *Tracker) stalenessLocked(i int, now time.Time) (time.Duration, bool) {
	r := &t.replicas[i]
	if r.seenAt.IsZero() {
		return 0, false
	}
	var at time.Time
	for k := range min(t.nsample, len(t.samples)) {
		s := t.samples[k]
		if s.pos <= r.replayed && s.at.After(at) {
			at = s.at
		}
	}
	if at.IsZero() {
		return 0, false
	}
	return now.Sub(at), true
}

// Staleness bounds how far behind the primary replica i is now (see
// stalenessLocked); ok is false when it is not known.
func (t *Tracker) Staleness(i int, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stalenessLocked(i, now)
}

// PrimaryAnswered records the position the primary reported right after a
// statement or commit of s ended: every read that must see s's writes (by
// scope) waits for it, and when the statement was a read (read), later reads
// of s never see less than it did. It returns the token position the
// caller's token should advance to: whatever the statement was classified
// as, it may have written (a function can), and the position covers it.
func (t *Tracker) PrimaryAnswered(s *Session, l LSN, read bool) Token {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.syncLocked(s)
	s.wrote = max(s.wrote, l)
	if read {
		s.seen = max(s.seen, l)
	}
	t.handle = max(t.handle, l)
	t.primary = max(t.primary, l)
	return Token{Present: true, LSN: l, Timeline: t.epoch.Timeline}
}

// ReplicaRead records that replica i served a read of s that waited for (or
// did not need to wait for) target: s and the handle never see less again.
func (t *Tracker) ReplicaRead(s *Session, i int, target LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.syncLocked(s)
	saw := max(target, t.replicas[i].replayed)
	s.seen = max(s.seen, saw)
	s.last = i
	t.handle = max(t.handle, saw)
}

// ReplicaSaw records the replay position replica i reported in the round
// trip of a read of s, after the read's statement: at least what the read
// saw (its snapshot came before), so that s's later reads, and the
// handle's, wait for it on whatever replica they run (exact monotonic
// reads across replicas). It also confirms the replica's position, as a
// wait does.
func (t *Tracker) ReplicaSaw(s *Session, i int, l LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.syncLocked(s)
	s.seen = max(s.seen, l)
	t.handle = max(t.handle, l)
	if t.replicas[i].reason == InRotation {
		t.confirmLocked(i, l)
	}
}

// Confirmed records that replica i replayed at least l (a wait succeeded).
// A replica out of rotation learns nothing from it: the wait may have
// succeeded before what took it out (a crash, after which it may come back
// behind l), and only a probe brings it back.
func (t *Tracker) Confirmed(i int, l LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.replicas[i].reason != InRotation {
		return
	}
	t.confirmLocked(i, l)
}

func (t *Tracker) confirmLocked(i int, l LSN) {
	r := &t.replicas[i]
	r.replayed = max(r.replayed, l)
	t.primary = max(t.primary, l)
}

// NeedsWait reports whether replica i must wait before serving a read of
// target, because it is not known to have replayed it.
func (t *Tracker) NeedsWait(i int, target LSN) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return target > t.replicas[i].replayed
}

// Pick chooses the replica for a read of s that must see target, by the
// balance policy, and remembers it as s's current replica; exclude lists
// replicas the read already tried. With maxStale, only a replica known to
// be at most maxStale behind the primary qualifies. It returns -1 when none
// does.
func (t *Tracker) Pick(s *Session, target LSN, maxStale time.Duration, exclude ...int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if maxStale > 0 {
		now := time.Now()
		exclude = slices.Clone(exclude)
		for i := range t.replicas {
			if d, ok := t.stalenessLocked(i, now); !ok || d > maxStale {
				exclude = append(exclude, i)
			}
		}
	}
	i := t.pickLocked(s.last, target, exclude)
	if i >= 0 {
		s.last = i
	}
	return i
}

// usableLocked reports whether replica i may serve a read of target: one in
// rotation may; one out for being Behind may serve a read that needs no wait
// (it has replayed target), since lag is all that is wrong with it (this
// keeps reads on replicas while the primary, which they would fall back to,
// is down); others may not.
func (t *Tracker) usableLocked(i int, target LSN, exclude []int) bool {
	r := &t.replicas[i]
	if r.lagging || r.reason != InRotation && !(r.reason == Behind && r.replayed >= target) {
		return false
	}
	for _, x := range exclude {
		if x == i {
			return false
		}
	}
	return true
}

func (t *Tracker) pickLocked(current int, target LSN, exclude []int) int {
	n := len(t.replicas)
	if n == 0 {
		return -1
	}
	if t.cfg.Balance != pgwait.BalanceLeastLag {
		if current >= 0 && t.usableLocked(current, target, exclude) {
			return current
		}
		t.next++
		start := t.next
		if t.cfg.Balance == pgwait.BalanceRandom {
			start = rand.IntN(n)
		}
		for k := range n {
			if i := (start + k) % n; t.usableLocked(i, target, exclude) {
				return i
			}
		}
		return -1
	}
	// Least lag: the current replica if it needs no wait, else one that
	// needs no wait (in turn), else the one furthest ahead.
	if current >= 0 && t.usableLocked(current, target, exclude) && t.replicas[current].replayed >= target {
		return current
	}
	best := -1
	t.next++
	for k := range n {
		i := (t.next + k) % n
		if !t.usableLocked(i, target, exclude) {
			continue
		}
		r := t.replicas[i].replayed
		if r >= target {
			return i
		}
		if best < 0 || r > t.replicas[best].replayed || i == current && r == t.replicas[best].replayed {
			best = i
		}
	}
	return best
}

// InRotation reports whether replica i serves reads.
func (t *Tracker) InRotation(i int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.replicas[i].reason == InRotation
}

// Eject takes replica i out of rotation for why (Failed or Promoted): what
// was known of its position is forgotten (it may come back behind it). It
// reports whether the replica was in rotation. The first probe comes one
// health interval later, however many reads report the same trouble.
func (t *Tracker) Eject(i int, why Reason, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.replicas[i]
	r.replayed = 0
	return t.ejectLocked(r, why, now)
}

func (t *Tracker) ejectLocked(r *replica, why Reason, now time.Time) bool {
	if r.reason == Removed {
		return false
	}
	if r.reason != InRotation {
		if why != Behind {
			r.reason = why // a failure says more than lagging
		}
		return false
	}
	r.reason, r.since = why, now
	r.retryAt = now.Add(t.cfg.HealthInterval)
	r.fails = 1
	r.ejected++
	return true
}

// WaitTimedOut records that replica i did not replay target within a wait.
// Only a wait that ran the whole wait timeout (full) for a verified target
// — a position the primary really reached — says the replica is behind:
// then it leaves the rotation until a probe finds it caught up to target.
// A token nobody can verify, or a wait a caller's deadline cut short, moves
// no replica. It reports whether the replica left the rotation.
func (t *Tracker) WaitTimedOut(i int, target LSN, full, verified bool) bool {
	if !full || !verified {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if target > t.primary {
		return false
	}
	r := &t.replicas[i]
	r.needs = max(r.needs, target)
	return t.ejectLocked(r, Behind, time.Now())
}

// DueForProbe reports whether replica i should be probed now: replicas in
// rotation always are, ejected ones once their backoff has passed.
func (t *Tracker) DueForProbe(i int, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.replicas[i]
	return r.reason == InRotation || r.reason != Removed && !now.Before(r.retryAt)
}

// ProbeOK records a probe that found replica i in recovery, having replayed
// replayed, at now, the server running since incarnation (its start time).
// What was known of a replica out of rotation, or restarted since the last
// probe, is replaced rather than raised: a replica that restarts replays
// again from its last restartpoint, so it may be behind what it had
// replayed. An ejected replica comes back once it has replayed what it was
// ejected for. It reports whether the replica came back.
func (t *Tracker) ProbeOK(i int, replayed LSN, incarnation string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.replicas[i]
	if r.reason == Removed {
		return false
	}
	if r.reason != InRotation || r.incarnation != incarnation {
		r.replayed = 0
	}
	r.incarnation = incarnation
	t.confirmLocked(i, replayed)
	r.seenAt = now
	if t.cfg.MaxLag > 0 {
		lag, known := t.stalenessLocked(i, now)
		switch {
		case known && lag > t.cfg.MaxLag && !r.lagging:
			r.lagging = true
			t.lagExclusions++
		case r.lagging && (!known || lag < t.cfg.MaxLag*3/4):
			r.lagging = false
		}
	}
	if r.reason == InRotation || replayed < r.needs {
		return false
	}
	r.reason, r.needs, r.fails = InRotation, 0, 0
	r.since, r.retryAt = time.Time{}, time.Time{}
	return true
}

// ProbeFailed records a probe that failed or found replica i promoted (why):
// it leaves the rotation, with a backoff that doubles with each failure in
// a row. It reports whether the replica was in rotation.
func (t *Tracker) ProbeFailed(i int, why Reason, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.replicas[i]
	if r.reason == Removed {
		return false
	}
	r.replayed = 0
	was := r.reason == InRotation
	if was {
		r.since = now
		r.ejected++
	}
	r.reason = why
	r.fails++
	backoff := t.cfg.HealthInterval << min(r.fails-1, 16)
	r.retryAt = now.Add(min(backoff, t.cfg.MaxBackoff))
	return was
}

// ObservePrimary records the history of a primary just connected to. When it
// differs from the one before, the primary failed over: positions past the
// new primary's start are set aside, and what replicas were known to have
// replayed is forgotten (WAIT FOR LSN ignores timelines). It reports whether
// this was a failover.
func (t *Tracker) ObservePrimary(e Epoch) bool {
	if e.System == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.epoch
	switch {
	case old.System == "":
		t.epoch = e
		t.primary = max(t.primary, e.Start)
		return false
	case old.System == e.System && old.Timeline == e.Timeline:
		t.primary = max(t.primary, e.Start)
		return false
	case old.System == e.System && e.Timeline < old.Timeline:
		return false // a connection to a stale primary; the newer timeline stands
	}
	t.epoch = e
	t.gen++
	t.handle = min(t.handle, e.Start)
	t.primary = e.Start
	t.nsample = 0 // positions of another history
	for i := range t.replicas {
		t.replicas[i].replayed = 0
		t.replicas[i].needs = min(t.replicas[i].needs, e.Start)
	}
	return true
}

// Epoch returns the current primary history.
func (t *Tracker) Epoch() Epoch {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch
}

// LagExclusions counts the times a replica was measured past Config.MaxLag
// and left the picks.
func (t *Tracker) LagExclusions() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lagExclusions
}

// Lagging reports whether replica i is kept out of picks for its lag.
func (t *Tracker) Lagging(i int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.replicas[i].lagging
}

// HighWater returns the handle's position: what a read at handle scope
// without a token must see.
func (t *Tracker) HighWater() LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.handle
}

// PrimaryPosition returns the highest position any server reported on the
// current primary history: at most the primary's real position, and behind
// it by whatever was written since pgwait last heard from the primary.
func (t *Tracker) PrimaryPosition() LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.primary
}

// ReplicaState is a snapshot of one replica's state.
type ReplicaState struct {
	Replayed LSN
	Reason   Reason
	Since    time.Time
	Needs    LSN
	// RetryAt is when an ejected replica may be probed again.
	RetryAt time.Time
	// Ejections counts the times it left the rotation.
	Ejections uint64
}

// Replica returns a snapshot of replica i.
func (t *Tracker) Replica(i int) ReplicaState {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.replicas[i]
	return ReplicaState{Replayed: r.replayed, Reason: r.reason, Since: r.since, Needs: r.needs, RetryAt: r.retryAt, Ejections: r.ejected}
}
