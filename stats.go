package pgwait

import "time"

// Stats counts what a pgwait handle did since it was opened. Get it with
// driver.StatsOf(db) or (*driver.Connector).Stats.
type Stats struct {
	// Writes counts statements and commits whose LSN pgwait captured.
	Writes uint64
	// ReplicaReads counts reads a replica served.
	ReplicaReads uint64
	// PrimaryReads counts reads the primary served: forced, in read-write
	// transactions, without replicas, or as a fallback.
	PrimaryReads uint64
	// Waits counts reads that made their replica wait for an LSN.
	Waits uint64
	// WaitsSkipped counts reads that needed an LSN their replica was already
	// known to have replayed, and so did not wait.
	WaitsSkipped uint64
	// WaitTimeouts counts waits that ran out of time.
	WaitTimeouts uint64
	// Fallbacks counts reads meant for a replica that the primary served: after
	// a wait timeout, a promoted or unreachable replica.
	Fallbacks uint64
	// ReadOnlyRetries counts statements a replica refused as writes (SQLSTATE
	// 25006) that pgwait then ran on the primary.
	ReadOnlyRetries uint64
	// Promotions counts replicas found promoted (no longer in recovery).
	Promotions uint64
	// ReplicaErrors counts replica connections or reads that failed.
	ReplicaErrors uint64
	// Ejections counts the times a replica was taken out of rotation (it
	// failed, was promoted, or let a wait time out).
	Ejections uint64
	// Failovers counts the times the primary changed (another system
	// identifier or timeline) and the LSNs remembered from the old one were
	// set aside.
	Failovers uint64
	// TokensReset counts tokens reset to the primary's position because
	// they were ahead of everything the primary had written, or named a
	// timeline it does not have (forged tokens, or tokens from a cluster
	// since restored or rebuilt): see Token.Set.
	TokensReset uint64
	// PinnedConns counts connections pinned to the primary because a
	// statement left state in the primary's session that replicas lack
	// (a temporary table, set_config(), ...); see the package documentation.
	PinnedConns uint64
	// RecoveryConflicts counts replica reads cancelled by WAL replay (a
	// recovery conflict) and run again on another replica or the primary.
	RecoveryConflicts uint64
	// ReplicaTimeouts counts round trips to a replica that passed the replica
	// timeout without an answer (Config.ReplicaTimeout): the connection was
	// abandoned, the replica ejected, and the read run elsewhere.
	ReplicaTimeouts uint64
	// LagExclusions counts the times a replica was measured more than
	// Config.MaxReplicaLag behind the primary and left every read's choice.
	LagExclusions uint64
	// VisibilityTimeouts counts writes that asked to be visible on replicas
	// (WithVisibility) and returned before enough of them had replayed them.
	VisibilityTimeouts uint64
	// WaitTime is the total time reads spent waiting for replicas, and
	// WaitHistogram how those waits were spread.
	WaitTime      time.Duration
	WaitHistogram []WaitBucket
}

// WaitBucket counts the waits that took at most UpTo (and more than the
// previous bucket's UpTo). The last bucket's UpTo is 0: longer than all.
type WaitBucket struct {
	UpTo  time.Duration
	Count uint64
}

// WaitBucketBounds returns the upper bounds of Stats.WaitHistogram's
// buckets, before the last, unbounded one, in increasing order. Each call
// returns a new slice: changing it changes nothing else.
func WaitBucketBounds() []time.Duration {
	return append([]time.Duration(nil), waitBucketBounds[:]...)
}

// waitBucketBounds are WaitBucketBounds' values.
var waitBucketBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second,
}
