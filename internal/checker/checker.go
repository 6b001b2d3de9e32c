// Package checker verifies pgwait's consistency guarantees from a recorded
// history of operations, the way Jepsen-style checkers do: clients write
// increasing versions of a few keys and read them back through pgwait while
// faults are injected; afterwards Check looks for reads that missed a write
// acknowledged before they started (read-your-writes, handle scope), reads
// that went back in time for one client (monotonic reads), and acknowledged
// writes missing at the end (lost writes).
package checker

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind is an operation's kind.
type Kind uint8

const (
	// Write sets a key to a new, higher version.
	Write Kind = iota
	// Read reads a key's version.
	Read
)

// Op is one operation as a client saw it.
type Op struct {
	Client int
	Kind   Kind
	Key    int
	// Version is what a write wrote, or what a read saw (0: no row yet).
	Version int64
	// Start and End bracket the call, from the client's side.
	Start, End time.Time
	// Err is the call's error; a failed write may or may not have committed.
	Err error
	// Replica is true when a read was served by a replica.
	Replica bool
}

// History collects operations from concurrent clients.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Violation is one broken guarantee.
type Violation struct {
	Op   Op
	Want int64 // the version the read or the final state had to reach
	Why  string
}

// String describes the violation: who read what, where and when.
func (v Violation) String() string {
	where := "primary"
	if v.Op.Replica {
		where = "replica"
	}
	return fmt.Sprintf("client %d %s key %d saw version %d on the %s, want >= %d (%s), %s-%s",
		v.Op.Client, kindName(v.Op.Kind), v.Op.Key, v.Op.Version, where, v.Want, v.Why,
		v.Op.Start.Format("15:04:05.000000"), v.Op.End.Format("15:04:05.000000"))
}

func kindName(k Kind) string {
	if k == Write {
		return "write"
	}
	return "read"
}

// Report is what Check found.
type Report struct {
	Writes, Reads             int // successful operations
	FailedWrites, FailedReads int
	ReplicaReads              int
	Stale                     []Violation // read-your-writes
	NonMonotonic              []Violation // monotonic reads per client
	Lost                      []Violation // acknowledged writes missing at the end
}

// OK reports whether no guarantee was broken and no read failed.
func (r Report) OK() bool {
	return r.FailedReads == 0 && len(r.Stale) == 0 && len(r.NonMonotonic) == 0 && len(r.Lost) == 0
}

// String summarises the report, listing a few violations of each kind.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d writes (%d failed), %d reads (%d failed, %d on replicas): %d stale, %d non-monotonic, %d lost",
		r.Writes, r.FailedWrites, r.Reads, r.FailedReads, r.ReplicaReads, len(r.Stale), len(r.NonMonotonic), len(r.Lost))
	for _, vs := range [][]Violation{r.Stale, r.NonMonotonic, r.Lost} {
		for i, v := range vs {
			if i == 5 {
				fmt.Fprintf(&b, "\n  ... %d more", len(vs)-5)
				break
			}
			b.WriteString("\n  ")
			b.WriteString(v.String())
		}
	}
	return b.String()
}

// Check verifies a history. final maps each key to its version read from the
// primary after the run. Read-your-writes is checked at handle scope: a read
// must see every write to its key acknowledged (by any client of the handle)
// before the read started.
func Check(ops []Op, final map[int]int64) Report {
	var r Report
	writes := map[int][]Op{} // per key, acknowledged writes by end time
	for _, op := range ops {
		switch {
		case op.Kind == Write && op.Err == nil:
			r.Writes++
			writes[op.Key] = append(writes[op.Key], op)
		case op.Kind == Write:
			r.FailedWrites++
		case op.Err == nil:
			r.Reads++
			if op.Replica {
				r.ReplicaReads++
			}
		default:
			r.FailedReads++
		}
	}
	// For each key: acknowledged writes by end time, with the running
	// maximum version, to find the highest version acknowledged before t.
	type ack struct {
		end time.Time
		max int64
	}
	acks := map[int][]ack{}
	for key, ws := range writes {
		sort.Slice(ws, func(i, j int) bool { return ws[i].End.Before(ws[j].End) })
		list := make([]ack, len(ws))
		var m int64
		for i, w := range ws {
			m = max(m, w.Version)
			list[i] = ack{w.End, m}
		}
		acks[key] = list
	}
	ackedBefore := func(key int, t time.Time) int64 {
		list := acks[key]
		i := sort.Search(len(list), func(i int) bool { return !list[i].end.Before(t) })
		if i == 0 {
			return 0
		}
		return list[i-1].max
	}

	// Reads in start order, per client, for monotonic reads.
	reads := make([]Op, 0, r.Reads)
	for _, op := range ops {
		if op.Kind == Read && op.Err == nil {
			reads = append(reads, op)
		}
	}
	sort.Slice(reads, func(i, j int) bool { return reads[i].Start.Before(reads[j].Start) })
	type clientKey struct{ client, key int }
	lastSeen := map[clientKey]Op{}
	for _, rd := range reads {
		if want := ackedBefore(rd.Key, rd.Start); rd.Version < want {
			r.Stale = append(r.Stale, Violation{rd, want, "a write acknowledged before the read started"})
		}
		ck := clientKey{rd.Client, rd.Key}
		if prev, ok := lastSeen[ck]; ok && prev.End.Before(rd.Start) && rd.Version < prev.Version {
			r.NonMonotonic = append(r.NonMonotonic, Violation{rd, prev.Version, "this client's previous read"})
		}
		if prev, ok := lastSeen[ck]; !ok || rd.Version >= prev.Version {
			lastSeen[ck] = rd
		}
	}
	for key := range acks {
		list := acks[key]
		want := list[len(list)-1].max
		if got := final[key]; got < want {
			r.Lost = append(r.Lost, Violation{Op{Kind: Write, Key: key, Version: got}, want, "final state"})
		}
	}
	return r
}
