package pgwait

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Level is the consistency a read asks for: what it must see, and so where
// it may run and whether it waits. The zero Level is ReadYourWrites. Set it
// per call with WithLevel, or for a handle with pgwait_consistency.
//
//	level               sees                                   costs
//	Eventual            whatever its replica has replayed       no wait
//	BoundedStaleness(d) everything committed d before it ran    no wait; a replica no more than d behind, else the primary
//	ReadYourWrites      every write its scope covers (Scope)    a wait when its replica is behind those writes
//	Global              every write committed anywhere before   one primary round trip (shared by concurrent reads), then a wait
//	                    it started
//	Primary             everything                              a primary round trip
//
// What happens on a wait timeout is OnTimeout's, for every level that waits.
// Read-write transactions and writes always run on the primary.
type Level struct {
	kind      levelKind
	staleness time.Duration
}

type levelKind uint8

const (
	levelRYW levelKind = iota
	levelEventual
	levelBounded
	levelGlobal
	levelPrimary
)

// The levels without a parameter.
var (
	// ReadYourWrites (the default) sees every write of its scope: the
	// handle's, the connection's, or the context's Token (see Scope), and
	// never less than earlier reads of that scope.
	ReadYourWrites = Level{}
	// Eventual reads from any replica in rotation without waiting: it may
	// miss recent writes, even the caller's own, and go back in time when it
	// moves to another replica.
	Eventual = Level{kind: levelEventual}
	// Global sees every write committed anywhere before the read started,
	// through any handle or process, without a token: pgwait reads the
	// primary's current WAL position (one round trip over a connection of
	// the handle's, shared by the reads that ask at the same time) and the
	// replica waits for it.
	Global = Level{kind: levelGlobal}
	// Primary reads from the primary (what OnPrimary does).
	Primary = Level{kind: levelPrimary}
)

// BoundedStaleness returns the level that sees everything committed at
// least d before the read ran, without waiting: a replica measured to be no
// more than d behind the primary serves it, else the primary. A replica's
// lag is measured from probes (see the package documentation), so d is
// honoured to within the health interval: choose d of a few health
// intervals at least.
func BoundedStaleness(d time.Duration) Level {
	return Level{kind: levelBounded, staleness: d}
}

// Staleness returns the bound of a BoundedStaleness level, else 0.
func (l Level) Staleness() time.Duration { return l.staleness }

// Waits reports whether reads at l wait for positions (ReadYourWrites and
// Global).
func (l Level) Waits() bool { return l.kind == levelRYW || l.kind == levelGlobal }

// IsEventual, IsGlobal, IsPrimary and IsBounded report l's kind.
func (l Level) IsEventual() bool { return l.kind == levelEventual }

// IsGlobal reports whether l is Global.
func (l Level) IsGlobal() bool { return l.kind == levelGlobal }

// IsPrimary reports whether l is Primary.
func (l Level) IsPrimary() bool { return l.kind == levelPrimary }

// IsBounded reports whether l is a BoundedStaleness level.
func (l Level) IsBounded() bool { return l.kind == levelBounded }

// String returns the DSN spelling: "ryw", "eventual", "global", "primary"
// or "bounded:5s".
func (l Level) String() string {
	switch l.kind {
	case levelEventual:
		return "eventual"
	case levelBounded:
		return "bounded:" + l.staleness.String()
	case levelGlobal:
		return "global"
	case levelPrimary:
		return "primary"
	}
	return "ryw"
}

// ParseLevel reads a level as String writes it.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "ryw", "read_your_writes":
		return ReadYourWrites, nil
	case "eventual":
		return Eventual, nil
	case "global":
		return Global, nil
	case "primary":
		return Primary, nil
	}
	if d, ok := strings.CutPrefix(s, "bounded:"); ok {
		if dur, err := time.ParseDuration(d); err == nil && dur > 0 {
			return BoundedStaleness(dur), nil
		}
	}
	return Level{}, fmt.Errorf("pgwait: consistency level %q: want ryw, eventual, global, primary or bounded:DURATION (such as bounded:5s)", s)
}

// WithLevel returns a context whose reads ask for level l.
func WithLevel(ctx context.Context, l Level) context.Context {
	return context.WithValue(ctx, levelKey, l)
}

// LevelFrom returns the level ctx asks for, and whether it asks for one.
// OnPrimary asks for Primary.
func LevelFrom(ctx context.Context) (Level, bool) {
	if RouteFrom(ctx) == RoutePrimary {
		return Primary, true
	}
	l, ok := ctx.Value(levelKey).(Level)
	return l, ok
}
