package tracker

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
)

func newTracker(scope pgwait.Scope, replicas int) *Tracker {
	return New(Config{Scope: scope, Replicas: replicas, HealthInterval: time.Second, MaxBackoff: 8 * time.Second})
}

func TestTargetByScope(t *testing.T) {
	tests := []struct {
		scope             pgwait.Scope
		own, other, token LSN
		want              LSN
	}{
		{pgwait.ScopeHandle, 10, 20, 0, 20},
		{pgwait.ScopeHandle, 30, 20, 0, 30},
		{pgwait.ScopeHandle, 10, 20, 25, 25},
		{pgwait.ScopeConn, 10, 20, 0, 10},
		{pgwait.ScopeConn, 10, 20, 15, 15},
		{pgwait.ScopeToken, 10, 20, 0, 0},
		{pgwait.ScopeToken, 10, 20, 15, 15},
	}
	for _, tt := range tests {
		t.Run(tt.scope.String(), func(t *testing.T) {
			tr := newTracker(tt.scope, 1)
			tr.ObservePrimary(Epoch{System: "s", Timeline: 1, Start: 1})
			own, other := tr.NewSession(), tr.NewSession()
			tr.PrimaryAnswered(own, tt.own, false)
			tr.ObservePrimaryPosition(100, time.Now())
			tr.PrimaryAnswered(other, tt.other, false)
			got := tr.Target(own, Token{Present: tt.token != 0, LSN: tt.token, Timeline: 1}, false)
			require.Equal(t, tt.want, got.LSN)
			require.Equal(t, TokenOK, got.Verdict)
			require.True(t, got.Verified)
		})
	}
}

func TestMonotonicReadsInEveryScope(t *testing.T) {
	for _, scope := range []pgwait.Scope{pgwait.ScopeHandle, pgwait.ScopeConn, pgwait.ScopeToken} {
		tr := newTracker(scope, 2)
		s := tr.NewSession()
		tr.Confirmed(1, 500) // replica 1 is known at 500
		tr.ReplicaRead(s, 1, 100)
		require.Equal(t, LSN(500), tr.Target(s, Token{}, false).LSN, scope.String())
	}
}

// TestReplicaSawAcrossReplicas: a read on a replica ahead of what the
// tracker knew of it reports its replay position; the next read, of the
// same session (every scope) or of another (handle scope), must wait for
// it on a replica known to be behind it.
func TestReplicaSawAcrossReplicas(t *testing.T) {
	for _, scope := range []pgwait.Scope{pgwait.ScopeHandle, pgwait.ScopeConn, pgwait.ScopeToken} {
		tr := newTracker(scope, 2)
		s, other := tr.NewSession(), tr.NewSession()
		tr.Confirmed(0, 100)
		tr.Confirmed(1, 500)
		tr.ReplicaRead(s, 0, 100)
		tr.ReplicaSaw(s, 0, 700) // replica 0 had replayed 700 when it served the read
		tg := tr.Target(s, Token{}, false)
		require.Equal(t, LSN(700), tg.LSN, scope.String())
		require.True(t, tr.NeedsWait(1, tg.LSN), "replica 1 is known at 500 only")
		require.False(t, tr.NeedsWait(0, tg.LSN), "replica 0 is confirmed at 700")
		want := LSN(0)
		if scope == pgwait.ScopeHandle {
			want = 700
		}
		require.Equal(t, want, tr.Target(other, Token{}, false).LSN, scope.String())
	}
	tr := newTracker(pgwait.ScopeHandle, 2)
	s := tr.NewSession()
	tr.Eject(1, Failed, time.Now())
	tr.ReplicaSaw(s, 1, 900) // a read that ended as its replica left the rotation
	require.Equal(t, LSN(900), tr.Target(s, Token{}, false).LSN, "the session saw it all the same")
	require.Equal(t, LSN(0), tr.Replica(1).Replayed, "a replica out of rotation is not confirmed")
}

func TestTokens(t *testing.T) {
	setup := func() (*Tracker, *Session) {
		tr := newTracker(pgwait.ScopeToken, 1)
		tr.ObservePrimary(Epoch{System: "s", Timeline: 2, Start: 1000})
		s := tr.NewSession()
		tr.PrimaryAnswered(s, 5000, false)
		tr.ObservePrimaryPosition(6000, time.Now())
		return tr, s
	}
	tests := []struct {
		name     string
		tok      Token
		verified bool
		want     Target
	}{
		{"empty", Token{}, false, Target{LSN: 0, Verified: true}},
		{"behind the primary", Token{Present: true, LSN: 4000, Timeline: 2}, false, Target{LSN: 4000, Verified: true}},
		{"unknown timeline", Token{Present: true, LSN: 4000}, false, Target{LSN: 4000, Verified: true}},
		{"earlier timeline is cut to the start", Token{Present: true, LSN: 4000, Timeline: 1}, false, Target{LSN: 1000, Verified: true}},
		{"ahead, unverified", Token{Present: true, LSN: 9000, Timeline: 2}, false, Target{LSN: 9000, Verdict: TokenUnverified}},
		{"ahead, clamped once verified", Token{Present: true, LSN: 9000, Timeline: 2}, true,
			Target{LSN: 5000, Verdict: TokenClamped, Verified: true, Clamp: Token{Present: true, LSN: 5000, Timeline: 2}}},
		{"ahead of a position the primary reported outside statements", Token{Present: true, LSN: 7000, Timeline: 2}, true,
			Target{LSN: 5000, Verdict: TokenClamped, Verified: true, Clamp: Token{Present: true, LSN: 5000, Timeline: 2}}},
		{"forged maximum", Token{Present: true, LSN: 1<<64 - 1}, true,
			Target{LSN: 5000, Verdict: TokenClamped, Verified: true, Clamp: Token{Present: true, LSN: 5000, Timeline: 2}}},
		{"later timeline, unverified", Token{Present: true, LSN: 10, Timeline: 7}, false, Target{LSN: 10, Verdict: TokenUnverified}},
		{"later timeline, clamped", Token{Present: true, LSN: 10, Timeline: 7}, true,
			Target{LSN: 5000, Verdict: TokenClamped, Verified: true, Clamp: Token{Present: true, LSN: 5000, Timeline: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, s := setup()
			require.Equal(t, tt.want, tr.Target(s, tt.tok, tt.verified))
		})
	}
}

func TestWaitTimeoutEjectsOnlyForVerifiedFullWaits(t *testing.T) {
	tests := []struct {
		name           string
		target         LSN
		full, verified bool
		ejected        bool
	}{
		{"full wait, verified", 100, true, true, true},
		{"cut short by the caller's deadline", 100, false, true, false},
		{"unverified token", 100, true, false, false},
		{"beyond anything the primary said", 1 << 40, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(pgwait.ScopeHandle, 1)
			tr.ObservePrimaryPosition(200, time.Now())
			require.Equal(t, tt.ejected, tr.WaitTimedOut(0, tt.target, tt.full, tt.verified))
			require.Equal(t, !tt.ejected, tr.InRotation(0))
		})
	}
}

func TestEjectedReplicaReturnsWhenCaughtUp(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	now := time.Unix(1000, 0)
	tr.ObservePrimaryPosition(500, time.Now())
	require.True(t, tr.WaitTimedOut(0, 400, true, true))
	require.False(t, tr.DueForProbe(0, now))
	require.True(t, tr.DueForProbe(0, time.Now().Add(2*time.Second)))
	require.False(t, tr.ProbeOK(0, 399, "a", time.Now()), "not caught up yet")
	require.False(t, tr.InRotation(0))
	require.True(t, tr.ProbeOK(0, 400, "a", time.Now()))
	require.True(t, tr.InRotation(0))
	require.Equal(t, LSN(400), tr.Replica(0).Replayed)
}

func TestBehindReplicaServesReadsThatNeedNoWait(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	tr.ObservePrimaryPosition(500, time.Now())
	tr.Confirmed(0, 300)
	require.True(t, tr.WaitTimedOut(0, 400, true, true))
	s := tr.NewSession()
	require.Equal(t, 0, tr.Pick(s, 300, 0), "it has replayed 300: no wait, no lag")
	require.Equal(t, -1, tr.Pick(s, 301, 0), "a read that would wait goes elsewhere")
	tr.Eject(0, Failed, time.Now())
	require.Equal(t, -1, tr.Pick(s, 0, 0), "a failed replica serves nothing")
}

func TestStalenessFromProbes(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 2)
	t0 := time.Unix(1000, 0)
	_, ok := tr.Staleness(0, t0)
	require.False(t, ok, "nothing known before a probe")
	for k := range 10 { // the primary moves 100 a second
		tr.ObservePrimaryPosition(LSN(100*(k+1)), t0.Add(time.Duration(k)*time.Second))
	}
	tr.ProbeOK(0, 550, "a", t0.Add(9*time.Second)) // has what the primary had at t0+4s
	tr.ProbeOK(1, 1000, "a", t0.Add(9*time.Second))
	d, ok := tr.Staleness(0, t0.Add(10*time.Second))
	require.True(t, ok)
	require.Equal(t, 6*time.Second, d)
	d, ok = tr.Staleness(1, t0.Add(10*time.Second))
	require.True(t, ok)
	require.Equal(t, time.Second, d)
	tr.Eject(1, Failed, t0)
	_, ok = tr.Staleness(1, t0.Add(10*time.Second))
	require.False(t, ok, "an ejected replica's position is forgotten")
}

func TestPickWithinStaleness(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 2)
	now := time.Now()
	tr.ObservePrimaryPosition(100, now.Add(-10*time.Second))
	tr.ObservePrimaryPosition(200, now.Add(-time.Second))
	tr.ProbeOK(0, 150, "a", now) // 10 s behind
	tr.ProbeOK(1, 200, "a", now) // 1 s behind
	s := tr.NewSession()
	require.Equal(t, 1, tr.Pick(s, 0, 5*time.Second))
	require.Equal(t, -1, tr.Pick(s, 0, 5*time.Second, 1))
	require.Equal(t, -1, tr.Pick(s, 0, 500*time.Millisecond))
}

func TestRestartedReplicaIsNotTrustedBeyondItsProbe(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	now := time.Now()
	tr.ProbeOK(0, 500, "started 1", now)
	require.False(t, tr.NeedsWait(0, 500))
	// Restarted between two probes: it replays again from a restartpoint.
	tr.ProbeOK(0, 300, "started 2", now)
	require.True(t, tr.NeedsWait(0, 400), "a restarted replica is known only as far as its new probe")
	// A wait that succeeded before a crash says nothing once it is out.
	tr.Eject(0, Failed, now)
	tr.Confirmed(0, 900)
	require.Equal(t, LSN(0), tr.Replica(0).Replayed)
	tr.ProbeOK(0, 350, "started 3", now)
	require.Equal(t, LSN(350), tr.Replica(0).Replayed)
}

func TestMaxLagWithHysteresis(t *testing.T) {
	tr := New(Config{Replicas: 1, HealthInterval: time.Second, MaxLag: 4 * time.Second})
	t0 := time.Unix(1000, 0)
	for k := range 20 { // the primary moves 100 a second
		tr.ObservePrimaryPosition(LSN(100*(k+1)), t0.Add(time.Duration(k)*time.Second))
	}
	s := tr.NewSession()
	tr.ProbeOK(0, 1500, "a", t0.Add(17*time.Second)) // what the primary had at t0+14s: 3 s behind
	require.False(t, tr.Lagging(0))
	require.Equal(t, 0, tr.Pick(s, 0, 0))
	tr.ProbeOK(0, 1500, "a", t0.Add(19*time.Second)) // 5 s behind
	require.True(t, tr.Lagging(0))
	require.Equal(t, -1, tr.Pick(s, 0, 0), "a replica past the bound serves no read")
	require.Equal(t, uint64(1), tr.LagExclusions())
	tr.ProbeOK(0, 1800, "a", t0.Add(20500*time.Millisecond)) // at t0+17s: 3.5 s, under the bound but not under 3/4 of it
	require.True(t, tr.Lagging(0), "hysteresis")
	tr.ProbeOK(0, 2000, "a", t0.Add(21*time.Second)) // at t0+19s: 2 s
	require.False(t, tr.Lagging(0))
	require.Equal(t, 0, tr.Pick(s, 0, 0))
}

func TestProbeBackoffDoubles(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	now := time.Unix(1000, 0)
	require.True(t, tr.ProbeFailed(0, Failed, now))
	for fails, want := range []time.Duration{2, 4, 8, 8, 8} {
		require.False(t, tr.ProbeFailed(0, Failed, now), "fail %d", fails)
		require.False(t, tr.DueForProbe(0, now.Add(want*time.Second-time.Millisecond)))
		require.True(t, tr.DueForProbe(0, now.Add(want*time.Second)))
	}
	require.Equal(t, Failed, tr.Replica(0).Reason)
	require.True(t, tr.ProbeOK(0, 1, "a", time.Now()))
}

func TestEjectForgetsPosition(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	tr.Confirmed(0, 100)
	require.False(t, tr.NeedsWait(0, 100))
	require.True(t, tr.Eject(0, Failed, time.Now()))
	require.False(t, tr.Eject(0, Promoted, time.Now()), "already out")
	require.Equal(t, Promoted, tr.Replica(0).Reason)
	require.True(t, tr.NeedsWait(0, 100))
	require.Equal(t, -1, tr.Pick(tr.NewSession(), 0, 0))
}

func TestFailoverSetsPositionsAside(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	require.False(t, tr.ObservePrimary(Epoch{System: "s", Timeline: 1, Start: 10}))
	s := tr.NewSession()
	tr.PrimaryAnswered(s, 9000, false)
	tr.Confirmed(0, 9000)
	require.False(t, tr.ObservePrimary(Epoch{System: "s", Timeline: 1, Start: 9000}), "same history")
	require.False(t, tr.ObservePrimary(Epoch{}), "unknown identity changes nothing")
	require.True(t, tr.ObservePrimary(Epoch{System: "s", Timeline: 2, Start: 7000}))
	require.Equal(t, LSN(7000), tr.Target(s, Token{}, false).LSN)
	require.True(t, tr.NeedsWait(0, 1), "WAIT FOR LSN ignores timelines: nothing is known of the replica")
	require.False(t, tr.ObservePrimary(Epoch{System: "s", Timeline: 1, Start: 9500}), "a stale primary changes nothing")
	require.Equal(t, uint32(2), tr.Epoch().Timeline)
	require.True(t, tr.ObservePrimary(Epoch{System: "rebuilt", Timeline: 1, Start: 50}))
	require.Equal(t, LSN(50), tr.HighWater())
}

func TestPickLeastLag(t *testing.T) {
	tr := New(Config{Scope: pgwait.ScopeHandle, Balance: pgwait.BalanceLeastLag, Replicas: 3})
	s := tr.NewSession()
	tr.Confirmed(0, 10)
	tr.Confirmed(1, 30)
	tr.Confirmed(2, 20)
	require.Equal(t, 1, tr.Pick(s, 100, 0), "the furthest ahead when none is caught up")
	require.Equal(t, 1, tr.Pick(s, 15, 0), "the current one when it needs no wait")
	got := tr.Pick(s, 25, 0, 1)
	require.Equal(t, 2, got, "the furthest ahead among the others")
	require.Equal(t, -1, tr.Pick(s, 0, 0, 0, 1, 2))
}

func TestPickRoundRobinKeepsCurrent(t *testing.T) {
	tr := New(Config{Balance: pgwait.BalanceRoundRobin, Replicas: 3})
	seen := map[int]bool{}
	for range 3 {
		seen[tr.Pick(tr.NewSession(), 0, 0)] = true
	}
	require.Len(t, seen, 3)
	s := tr.NewSession()
	first := tr.Pick(s, 0, 0)
	require.Equal(t, first, tr.Pick(s, 0, 0))
	tr.Eject(first, Failed, time.Now())
	require.NotEqual(t, first, tr.Pick(s, 0, 0))
}

// model is the reference the randomized test checks the tracker against:
// the real positions of a simulated cluster, and for each session and the
// handle every position the tracker was told about.
type model struct {
	primary  LSN   // the primary's real position
	replayed []LSN // each replica's real position
	wrote    []LSN // each session's latest commit
	seen     []LSN // each session's latest read position
	all      LSN   // every position any read or write reached
}

// TestAgainstModel drives the tracker with random operations on a
// simulated cluster and checks, after each read, the guarantees pgwait
// gives: a read's target covers what its scope requires (read-your-writes,
// monotonic reads, the token), a skipped wait is really replayed, a target
// never exceeds the primary's real position (tokens are clamped), and only
// replicas in rotation are picked.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(200) {
		for _, scope := range []pgwait.Scope{pgwait.ScopeHandle, pgwait.ScopeConn, pgwait.ScopeToken} {
			runModel(t, seed, scope)
		}
	}
}

func runModel(t *testing.T, seed uint64, scope pgwait.Scope) {
	rng := rand.New(rand.NewPCG(seed, uint64(scope)))
	const nrep, nses = 3, 4
	tr := New(Config{Scope: scope, Balance: pgwait.Balance(rng.IntN(3)), Replicas: nrep, HealthInterval: time.Millisecond})
	tr.ObservePrimary(Epoch{System: "s", Timeline: 1, Start: 100})
	m := model{primary: 100, replayed: make([]LSN, nrep), wrote: make([]LSN, nses), seen: make([]LSN, nses)}
	sessions := make([]*Session, nses)
	tokens := make([]*pgwait.Token, nses)
	for i := range sessions {
		sessions[i] = tr.NewSession()
		tokens[i] = new(pgwait.Token)
	}
	advance := func(tok *pgwait.Token, next Token) { tok.AdvanceOn(next.Timeline, pgwait.LSN(next.LSN)) }
	for step := range 400 {
		k := rng.IntN(nses)
		s := sessions[k]
		switch op := rng.IntN(8); op {
		case 0, 1: // a write commits on the primary
			m.primary += LSN(1 + rng.IntN(50))
			advance(tokens[k], tr.PrimaryAnswered(s, m.primary, false))
			m.wrote[k], m.all = m.primary, m.primary
		case 2: // replicas replay
			i := rng.IntN(nrep)
			m.replayed[i] = m.primary - LSN(rng.IntN(int(m.primary-m.replayed[i])+1))
		case 3: // a probe
			i := rng.IntN(nrep)
			if rng.IntN(4) == 0 {
				tr.ProbeFailed(i, Failed, time.Now())
			} else {
				tr.ProbeOK(i, m.replayed[i], "a", time.Now())
			}
		case 4: // a hostile token replaces session k's
			tokens[k].Set(pgwait.LSN(rng.Uint64()), uint32(rng.IntN(3)))
		default: // a read
			l, tli := tokens[k].Position()
			tok := Token{Present: l != 0, LSN: LSN(l), Timeline: tli}
			tg := tr.Target(s, tok, false)
			if tg.Verdict == TokenUnverified {
				tr.ObservePrimaryPosition(m.primary, time.Now())
				tg = tr.Target(s, tok, true)
			}
			if tg.Verdict == TokenClamped {
				tokens[k].Set(pgwait.LSN(tg.Clamp.LSN), tg.Clamp.Timeline)
			}
			require.LessOrEqual(t, tg.LSN, m.primary, "seed %d step %d: target beyond the primary", seed, step)
			require.GreaterOrEqual(t, tg.LSN, m.seen[k], "seed %d step %d: monotonic reads", seed, step)
			switch scope {
			case pgwait.ScopeHandle:
				require.GreaterOrEqual(t, tg.LSN, m.all, "seed %d step %d: handle read-your-writes", seed, step)
			case pgwait.ScopeConn:
				require.GreaterOrEqual(t, tg.LSN, m.wrote[k], "seed %d step %d: conn read-your-writes", seed, step)
			}
			if tok.Present && tg.Verdict == TokenOK {
				require.GreaterOrEqual(t, tg.LSN, min(tok.LSN, m.primary), "seed %d step %d: token", seed, step)
			}
			i := tr.Pick(s, tg.LSN, 0)
			if i < 0 {
				// Read on the primary: it reports its position after the read.
				advance(tokens[k], tr.PrimaryAnswered(s, m.primary, true))
				m.wrote[k] = max(m.wrote[k], m.primary)
				m.seen[k], m.all = max(m.seen[k], m.primary), max(m.all, m.primary)
				continue
			}
			require.True(t, tr.InRotation(i) || !tr.NeedsWait(i, tg.LSN), "picked a replica out of rotation that would have to wait")
			if !tr.NeedsWait(i, tg.LSN) {
				require.GreaterOrEqual(t, m.replayed[i], tg.LSN, "seed %d step %d: skipped a wait the replica had not replayed", seed, step)
			} else if m.replayed[i] >= tg.LSN {
				tr.Confirmed(i, tg.LSN)
			} else {
				tr.WaitTimedOut(i, tg.LSN, true, tg.Verified)
				continue
			}
			tr.ReplicaRead(s, i, tg.LSN)
			saw := max(tg.LSN, tr.Replica(i).Replayed)
			require.LessOrEqual(t, saw, m.replayed[i])
			m.seen[k], m.all = max(m.seen[k], saw), max(m.all, saw)
		}
	}
}

// FuzzTokens feeds hostile tokens to a tracker that has seen a primary at a
// known position: whatever the token, a verified target never exceeds what
// the primary reported, a clamp resets the token onto the primary's
// timeline, and an honest token (at most the primary's position, on its
// timeline) is honoured in full.
func FuzzTokens(f *testing.F) {
	f.Add(uint64(1<<64-1), uint32(0), uint64(5000))
	f.Add(uint64(0x10), uint32(9), uint64(5000))
	f.Add(uint64(4000), uint32(2), uint64(5000))
	f.Add(uint64(4000), uint32(1), uint64(0))
	f.Fuzz(func(t *testing.T, l uint64, tli uint32, primary uint64) {
		tr := newTracker(pgwait.ScopeToken, 1)
		tr.ObservePrimary(Epoch{System: "s", Timeline: 2, Start: 100})
		s := tr.NewSession()
		tr.PrimaryAnswered(s, LSN(max(primary, 100)), false)
		top := LSN(max(primary, 100))
		tok := Token{Present: l != 0, LSN: LSN(l), Timeline: tli}
		got := tr.Target(s, tok, true)
		if got.LSN > top {
			t.Fatalf("target %v beyond the primary's %v for token %v", got.LSN, top, tok)
		}
		switch got.Verdict {
		case TokenClamped:
			if got.Clamp.Timeline != 2 || got.Clamp.LSN > top {
				t.Fatalf("clamp %+v", got.Clamp)
			}
		case TokenUnverified:
			t.Fatal("a verified target is never unverified")
		}
		if tok.Present && (tli == 2 || tli == 0) && tok.LSN <= top && got.LSN < tok.LSN {
			t.Fatalf("honest token %v cut to %v", tok, got.LSN)
		}
	})
}

func TestPrimaryPosition(t *testing.T) {
	tests := []struct {
		name string
		do   func(*Tracker, *Session)
		want LSN
	}{
		{"nothing heard", func(*Tracker, *Session) {}, 0},
		{"a statement's answer", func(tr *Tracker, s *Session) { tr.PrimaryAnswered(s, 300, false) }, 300},
		{"a probe of the primary", func(tr *Tracker, s *Session) { tr.ObservePrimaryPosition(400, time.Now()) }, 400},
		{"a replica's confirmation", func(tr *Tracker, s *Session) { tr.Confirmed(0, 350) }, 350},
		{"only grows", func(tr *Tracker, s *Session) {
			tr.PrimaryAnswered(s, 500, false)
			tr.ObservePrimaryPosition(200, time.Now())
		}, 500},
		{"a failover cuts it to the new start", func(tr *Tracker, s *Session) {
			tr.PrimaryAnswered(s, 900, false)
			tr.ObservePrimary(Epoch{System: "s", Timeline: 2, Start: 700})
		}, 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(pgwait.ScopeHandle, 1)
			tr.ObservePrimary(Epoch{System: "s", Timeline: 1, Start: 0})
			tt.do(tr, tr.NewSession())
			require.Equal(t, tt.want, tr.PrimaryPosition())
		})
	}
}

func TestReplicaCountsEjections(t *testing.T) {
	tr := newTracker(pgwait.ScopeHandle, 1)
	now := time.Now()
	require.Zero(t, tr.Replica(0).Ejections)
	require.True(t, tr.Eject(0, Failed, now))
	require.False(t, tr.Eject(0, Failed, now), "already out")
	require.False(t, tr.ProbeFailed(0, Failed, now.Add(time.Second)), "still out")
	st := tr.Replica(0)
	require.Equal(t, uint64(1), st.Ejections)
	require.Equal(t, now.Add(3*time.Second), st.RetryAt, "two failures in a row: twice the interval")
	require.True(t, tr.ProbeOK(0, 10, "a", time.Now()))
	require.True(t, tr.ProbeFailed(0, Promoted, now.Add(5*time.Second)))
	require.Equal(t, uint64(2), tr.Replica(0).Ejections)
	tr.ObservePrimaryPosition(100, time.Now())
	require.True(t, tr.ProbeOK(0, 10, "a", time.Now()))
	require.True(t, tr.WaitTimedOut(0, 50, true, true))
	require.Equal(t, uint64(3), tr.Replica(0).Ejections)
}
