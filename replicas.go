package pgwait

import "time"

// ReplicaState says whether a replica serves reads, and if not, what brings
// it back.
type ReplicaState uint8

const (
	// ReplicaInRotation: the replica serves reads.
	ReplicaInRotation ReplicaState = iota
	// ReplicaEjected: the replica failed or fell behind and is out of the
	// rotation, waiting out its backoff before the next probe.
	ReplicaEjected
	// ReplicaProbing: the replica is out of the rotation and its backoff is
	// over: the next health probe that finds it reachable, in recovery and
	// caught up puts it back.
	ReplicaProbing
	// ReplicaPromoted: the replica is no longer in recovery (it was
	// promoted) and serves no reads; probes look again after a backoff, in
	// case it was rebuilt as a replica.
	ReplicaPromoted
)

// String returns "in rotation", "ejected", "probing" or "promoted".
func (s ReplicaState) String() string {
	switch s {
	case ReplicaEjected:
		return "ejected"
	case ReplicaProbing:
		return "probing"
	case ReplicaPromoted:
		return "promoted"
	}
	return "in rotation"
}

// ReplicaStatus is what a pgwait handle knows of one replica, at one moment.
// Get it with driver.ReplicasOf(ctx, db) or (*driver.Connector).Replicas.
// The counts run from the handle's opening.
type ReplicaStatus struct {
	// Addr is the replica's host:port, as in Event.Addr.
	Addr string
	// Name is, for a replica DNS discovery found (DiscoveryDNS), the
	// host:port it was given as, whose name resolved to Addr's address;
	// empty for any other replica.
	Name string
	// State says whether it serves reads.
	State ReplicaState
	// Reason says why it left the rotation ("failed", "promoted", or
	// "behind": a wait for a position the primary had reached timed out),
	// and Since when; both are empty while it is in rotation.
	Reason string
	Since  time.Time
	// Needs is, for a replica out as "behind", the position it must replay
	// before a probe puts it back.
	Needs LSN
	// LastError is the last error a connection to it, a read on it or a
	// health probe of it returned, and LastErrorAt when; it stays after the
	// replica recovers.
	LastError   error
	LastErrorAt time.Time

	// Replayed is the position the replica was last confirmed (by a wait or
	// a probe) to have replayed on the current primary's history; 0 when
	// unknown (it left the rotation, or the primary failed over since).
	Replayed LSN
	// LagBytes is how far Replayed is behind the latest primary position
	// pgwait heard of (from a write, a read on the primary, a token check or
	// a wait): a lower bound, since the primary may have written more since.
	// LagBytesKnown is false when Replayed is unknown.
	LagBytes      uint64
	LagBytesKnown bool
	// Lag is the replica's replay delay at its last successful probe
	// (Probed): 0 when it had replayed all the WAL it had received, else
	// the time since the last transaction it replayed committed on the
	// primary, as the replica's clock sees it (clock skew between primary
	// and replica adds to it). LagKnown is false before a probe measured
	// it, or when the replica had replayed no transaction since it started.
	Lag      time.Duration
	LagKnown bool
	// Probed is when a health probe last found it reachable and in
	// recovery; zero before the first.
	Probed time.Time

	// Reads counts the statements outside transactions it served (as
	// Stats.ReplicaReads does: read-only transactions are not counted),
	// Waits the waits it was asked for (reads' and read-only transactions'),
	// WaitTimeouts those that ran out of time (or had no time left under the
	// caller's deadline), Fallbacks the statements meant for it that the
	// primary served because it timed out, was found promoted or failed
	// mid-read (a read-only transaction moved to the primary is counted in
	// Stats.Fallbacks only), and Ejections the times it left the rotation.
	Reads, Waits, WaitTimeouts, Fallbacks, Ejections uint64
}
