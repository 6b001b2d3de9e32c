// Package checker verifies pgwait's consistency guarantees from a recorded
// history of operations, the way Jepsen-style checkers do: clients write
// increasing versions of a few keys and read them back through pgwait while
// faults are injected; afterwards Check looks for reads that missed a write
// acknowledged before they started (read-your-writes, handle scope), reads
// that missed a write their token covers (read-your-writes through a token,
// possibly across handles), Global reads that missed a write any handle
// acknowledged before they started, bounded-staleness reads that missed one
// acknowledged more than their bound before, reads that went back in time
// for one client
// (monotonic reads), acknowledged writes missing at the end (lost writes),
// and reads under row-level security that returned another tenant's rows
// (tenant leaks).
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
	// TenantRead reads every row of a table under row-level security after
	// switching the session's tenant.
	TenantRead
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
	// Handle numbers the *sql.DB the operation went through: 0 the
	// workload's, at handle scope, among whose operations read-your-writes
	// and monotonic reads across clients hold; 1 the second handle, at
	// token scope (monotonic reads per client).
	Handle int
	// Token is, for a write made with a token, the token's position after
	// it (the write's commit); for a read, the position of the token it
	// carried from such writes: the read must see every write whose token
	// position is at most it. 0: none.
	Token uint64
	// Global marks a read at the Global level: it must see every write any
	// handle had acknowledged before it started.
	Global bool
	// Bound, for a read at BoundedStaleness(Bound), is how stale it may be:
	// it must see every write any handle had acknowledged Bound before it
	// started.
	Bound time.Duration
	// Via says how the operation was made ("insert", "SELECT f()", ...),
	// for reports.
	Via string
	// Tenant is the tenant a TenantRead switched to, and Tenants the tenant
	// of each row it returned.
	Tenant  string
	Tenants []string
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
	if v.Op.Kind == TenantRead {
		return fmt.Sprintf("client %d (%s) as tenant %q saw rows of %q on the %s (%s), %s-%s",
			v.Op.Client, v.Op.Via, v.Op.Tenant, v.Op.Tenants, where, v.Why,
			v.Op.Start.Format("15:04:05.000000"), v.Op.End.Format("15:04:05.000000"))
	}
	return fmt.Sprintf("client %d %s key %d saw version %d on the %s, want >= %d (%s), %s-%s",
		v.Op.Client, kindName(v.Op.Kind), v.Op.Key, v.Op.Version, where, v.Want, v.Why,
		v.Op.Start.Format("15:04:05.000000"), v.Op.End.Format("15:04:05.000000"))
}

func kindName(k Kind) string {
	return [...]string{"write", "read", "tenant read"}[k]
}

// Report is what Check found.
type Report struct {
	Writes, Reads             int // successful operations
	FailedWrites, FailedReads int
	ReplicaReads              int
	TokenReads                int // successful reads that carried a token
	TenantReads               int // successful tenant reads (failed ones count in FailedReads)
	TenantReplicaReads        int
	Stale                     []Violation // read-your-writes, by handle or by token
	NonMonotonic              []Violation // monotonic reads per client
	Lost                      []Violation // acknowledged writes missing at the end
	Leaks                     []Violation // tenant reads with rows not their tenant's, or none of its own
}

// OK reports whether no guarantee was broken and no read failed.
func (r Report) OK() bool {
	return r.FailedReads == 0 && len(r.Stale) == 0 && len(r.NonMonotonic) == 0 && len(r.Lost) == 0 && len(r.Leaks) == 0
}

// String summarises the report, listing a few violations of each kind.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d writes (%d failed), %d reads (%d failed, %d on replicas, %d with tokens), %d tenant reads (%d on replicas): %d stale, %d non-monotonic, %d lost, %d tenant leaks",
		r.Writes, r.FailedWrites, r.Reads, r.FailedReads, r.ReplicaReads, r.TokenReads, r.TenantReads, r.TenantReplicaReads,
		len(r.Stale), len(r.NonMonotonic), len(r.Lost), len(r.Leaks))
	for _, vs := range [][]Violation{r.Stale, r.NonMonotonic, r.Lost, r.Leaks} {
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
// primary after the run.
//
// Read-your-writes is checked at handle scope, for the workload's handle
// (0): a read through it must see every write to its key acknowledged (by
// any of its clients) before the read started. The other handle is at
// token scope, where a read is owed only what its token covers. A read that carried a token must also see every write to its key
// whose token position is at most the token's, whichever handle made it.
// Monotonic reads are checked per handle and client, for reads without a
// token or a staleness bound: a token read is owed what its token covers
// (a handle at token scope keeps reads monotonic per connection only, and
// a pool hands a client any connection), a BoundedStaleness read only its
// bound. The workload's handle (0), at handle scope, must also keep them
// across its clients: such a read sees at least what any read through it
// that ended before it started saw, on whatever replica either ran. A
// tenant read must return rows, all of its tenant.
func Check(ops []Op, final map[int]int64) Report {
	var r Report
	type handleKey struct{ handle, key int }
	writes := map[handleKey][]Op{} // acknowledged writes, per handle and key
	tokenWrites := map[int][]Op{}  // acknowledged writes made with a token, per key
	for _, op := range ops {
		switch {
		case op.Kind == TenantRead && op.Err == nil:
			r.TenantReads++
			if op.Replica {
				r.TenantReplicaReads++
			}
			if v, ok := tenantLeak(op); !ok {
				r.Leaks = append(r.Leaks, v)
			}
		case op.Kind == Write && op.Err == nil:
			r.Writes++
			writes[handleKey{op.Handle, op.Key}] = append(writes[handleKey{op.Handle, op.Key}], op)
			if op.Token != 0 {
				tokenWrites[op.Key] = append(tokenWrites[op.Key], op)
			}
		case op.Kind == Write:
			r.FailedWrites++
		case op.Err == nil:
			r.Reads++
			if op.Replica {
				r.ReplicaReads++
			}
			if op.Token != 0 {
				r.TokenReads++
			}
		default:
			r.FailedReads++
		}
	}
	// For each handle and key: acknowledged writes by end time, with the
	// running maximum version, to find the highest version acknowledged
	// before t. For each key: writes made with a token by token position,
	// likewise, to find the highest version a token covers.
	acks := map[handleKey][]mark{}
	lastAcked := map[int]int64{}
	for hk, ws := range writes {
		acks[hk] = marks(ws, func(op Op) uint64 { return nanos(op.End) })
		lastAcked[hk.key] = max(lastAcked[hk.key], acks[hk][len(ws)-1].max)
	}
	allAcks := map[int][]mark{} // every handle's acknowledged writes, per key
	for key := range lastAcked {
		var ws []Op
		for hk, hws := range writes {
			if hk.key == key {
				ws = append(ws, hws...)
			}
		}
		allAcks[key] = marks(ws, func(op Op) uint64 { return nanos(op.End) })
	}
	covered := map[int][]mark{}
	for key, ws := range tokenWrites {
		covered[key] = marks(ws, func(op Op) uint64 { return op.Token })
	}

	// Reads in start order, per client, for monotonic reads.
	reads := make([]Op, 0, r.Reads)
	for _, op := range ops {
		if op.Kind == Read && op.Err == nil {
			reads = append(reads, op)
		}
	}
	sort.Slice(reads, func(i, j int) bool { return reads[i].Start.Before(reads[j].Start) })
	type clientKey struct{ handle, client, key int }
	lastSeen := map[clientKey]Op{}
	// The workload's handle (0) is at handle scope: its reads are monotonic
	// across its clients, whichever replicas served them. Reads of it by
	// end time, per key, to find the highest version a read that ended
	// before t saw.
	handleReads := map[int][]Op{}
	for _, rd := range reads {
		if rd.Handle == 0 && rd.Token == 0 {
			handleReads[rd.Key] = append(handleReads[rd.Key], rd)
		}
	}
	seenBefore := map[int][]mark{}
	for key, rs := range handleReads {
		seenBefore[key] = marks(rs, func(op Op) uint64 { return nanos(op.End) })
	}
	for _, rd := range reads {
		if want := before(acks[handleKey{0, rd.Key}], nanos(rd.Start), false); rd.Handle == 0 && rd.Version < want {
			r.Stale = append(r.Stale, Violation{rd, want, "a write acknowledged before the read started"})
		}
		if rd.Global {
			if want := before(allAcks[rd.Key], nanos(rd.Start), false); rd.Version < want {
				r.Stale = append(r.Stale, Violation{rd, want, "a write some handle acknowledged before the global read started"})
			}
		}
		if rd.Bound > 0 {
			if want := before(allAcks[rd.Key], nanos(rd.Start.Add(-rd.Bound)), false); rd.Version < want {
				r.Stale = append(r.Stale, Violation{rd, want, fmt.Sprintf("a write some handle acknowledged more than %v before the bounded read started", rd.Bound)})
			}
		}
		if rd.Token != 0 {
			if want := before(covered[rd.Key], rd.Token, true); rd.Version < want {
				r.Stale = append(r.Stale, Violation{rd, want, fmt.Sprintf("a write the read's token %X/%X covers", rd.Token>>32, uint32(rd.Token))})
			}
			continue
		}
		if rd.Bound > 0 {
			continue // BoundedStaleness promises no monotonic reads: its replica may be any within the bound
		}
		if rd.Handle == 0 {
			if want := before(seenBefore[rd.Key], nanos(rd.Start), false); rd.Version < want {
				r.NonMonotonic = append(r.NonMonotonic, Violation{rd, want, "a read through the handle that ended before this one started"})
			}
			continue
		}
		ck := clientKey{rd.Handle, rd.Client, rd.Key}
		if prev, ok := lastSeen[ck]; ok && prev.End.Before(rd.Start) && rd.Version < prev.Version {
			r.NonMonotonic = append(r.NonMonotonic, Violation{rd, prev.Version, "this client's previous read"})
		}
		if prev, ok := lastSeen[ck]; !ok || rd.Version >= prev.Version {
			lastSeen[ck] = rd
		}
	}
	for key, want := range lastAcked {
		if got := final[key]; got < want {
			r.Lost = append(r.Lost, Violation{Op{Kind: Write, Key: key, Version: got}, want, "final state"})
		}
	}
	return r
}

// mark is a point in a list of writes ordered by end time (in nanoseconds)
// or by token position, with the highest version up to it.
type mark struct {
	at  uint64
	max int64
}

// nanos orders times as marks do.
func nanos(t time.Time) uint64 { return uint64(t.UnixNano()) }

// marks orders ws by at and keeps the running maximum version.
func marks(ws []Op, at func(Op) uint64) []mark {
	list := make([]mark, len(ws))
	for i, w := range ws {
		list[i] = mark{at(w), w.Version}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].at < list[j].at })
	for i := 1; i < len(list); i++ {
		list[i].max = max(list[i].max, list[i-1].max)
	}
	return list
}

// before returns the highest version of the marks before t (or at t, when
// inclusive), 0 for none.
func before(list []mark, t uint64, inclusive bool) int64 {
	i := sort.Search(len(list), func(i int) bool {
		if inclusive {
			return list[i].at > t
		}
		return list[i].at >= t
	})
	if i == 0 {
		return 0
	}
	return list[i-1].max
}

// tenantLeak checks a tenant read: it returned rows, and only its tenant's.
func tenantLeak(op Op) (Violation, bool) {
	if len(op.Tenants) == 0 {
		return Violation{Op: op, Why: "none of its own rows"}, false
	}
	for _, t := range op.Tenants {
		if t != op.Tenant {
			return Violation{Op: op, Why: "another tenant's row"}, false
		}
	}
	return Violation{}, true
}
