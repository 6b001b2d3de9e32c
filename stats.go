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
	// WaitTime is the total time reads spent waiting for replicas.
	WaitTime time.Duration
}
