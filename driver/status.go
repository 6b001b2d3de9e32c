package driver

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/tracker"
)

// Per-replica status: what ReplicasOf reports. The tracker holds each
// replica's place in the rotation and its position; replicaStatus holds
// what only the driver sees (counts, the last error, the replay delay a
// probe measured), fed by one-line hooks on the read path and in the health
// probes.

// replicaStatus is the driver's part of one replica's status. Its zero
// value is ready; it is safe for concurrent use.
type replicaStatus struct {
	reads, waits, waitTimeouts, fallbacks atomic.Uint64

	mu       sync.Mutex
	lastErr  error
	errAt    time.Time
	lag      time.Duration
	lagKnown bool
	probedAt time.Time
}

// failed records err as the replica's last error.
func (s *replicaStatus) failed(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr, s.errAt = err, time.Now()
}

// probed records a successful probe, with the replay delay it measured in
// seconds as text (nil: unknown).
func (s *replicaStatus) probed(lagSeconds []byte) {
	lag, known := parseLag(lagSeconds)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probedAt, s.lag, s.lagKnown = time.Now(), lag, known
}

// parseLag reads a delay in seconds ("0", "1.25"), as the probe's numeric
// column gives it. A negative delay (the replica's clock behind the
// primary's) reads as 0.
func parseLag(b []byte) (time.Duration, bool) {
	if b == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != f {
		return 0, false
	}
	if f < 0 {
		return 0, true
	}
	return time.Duration(f * float64(time.Second)), true
}

// Replicas returns the status of each replica in the set, in the order the
// DSN lists them (replicas added at run time, and those DNS discovery
// found, after them, in the order they came). It takes one short lock per
// replica and does no I/O: call it as often as metrics are scraped.
func (c *Connector) Replicas() []pgwait.ReplicaStatus {
	primary := c.track.PrimaryPosition()
	now := time.Now()
	var out []pgwait.ReplicaStatus
	for i, r := range c.replicaList() {
		if !r.removed.Load() {
			out = append(out, statusOf(r, c.track.Replica(i), primary, now))
		}
	}
	return out
}

// statusOf combines what the tracker and the driver know of replica r.
func statusOf(r *replica, ts tracker.ReplicaState, primary tracker.LSN, now time.Time) pgwait.ReplicaStatus {
	st := pgwait.ReplicaStatus{
		Addr:         r.addr,
		Name:         r.name,
		Replayed:     pgwait.LSN(ts.Replayed),
		Ejections:    ts.Ejections,
		Reads:        r.status.reads.Load(),
		Waits:        r.status.waits.Load(),
		WaitTimeouts: r.status.waitTimeouts.Load(),
		Fallbacks:    r.status.fallbacks.Load(),
	}
	switch {
	case ts.Reason == tracker.InRotation:
		st.State = pgwait.ReplicaInRotation
	case ts.Reason == tracker.Promoted:
		st.State = pgwait.ReplicaPromoted
	case now.Before(ts.RetryAt):
		st.State = pgwait.ReplicaEjected
	default:
		st.State = pgwait.ReplicaProbing
	}
	if ts.Reason != tracker.InRotation {
		st.Reason, st.Since = ts.Reason.String(), ts.Since
		if ts.Reason == tracker.Behind {
			st.Needs = pgwait.LSN(ts.Needs)
		}
	}
	if ts.Replayed != 0 {
		st.LagBytesKnown = true
		if primary > ts.Replayed {
			st.LagBytes = uint64(primary - ts.Replayed)
		}
	}
	r.status.mu.Lock()
	st.LastError, st.LastErrorAt = r.status.lastErr, r.status.errAt
	st.Lag, st.LagKnown, st.Probed = r.status.lag, r.status.lagKnown, r.status.probedAt
	r.status.mu.Unlock()
	return st
}

// ReplicasOf returns the status of each replica of a *sql.DB opened with the
// pgwait driver, through wrappers that expose the driver's connection with a
// Raw method (otelsql) as StatsOf does. It borrows a pooled connection, which
// may open one to the primary: to poll often, or while the primary may be
// down, keep the connector (ConnectorOf, once) and call its Replicas.
func ReplicasOf(ctx context.Context, db *sql.DB) ([]pgwait.ReplicaStatus, error) {
	c, err := ConnectorOf(ctx, db)
	if err != nil {
		return nil, err
	}
	return c.Replicas(), nil
}

// ConnectorOf returns the *Connector behind a *sql.DB opened with the pgwait
// driver, through wrappers that expose the driver's connection with a Raw
// method (otelsql). Its Stats and Replicas then need no connection: metrics
// collectors keep it. It borrows a pooled connection once.
func ConnectorOf(ctx context.Context, db *sql.DB) (*Connector, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var c *Connector
	err = conn.Raw(func(dc any) error {
		pc, ok := unwrap(dc)
		if !ok {
			return errors.New("pgwait: ConnectorOf needs a *sql.DB opened with the pgwait driver (through a wrapper that hides the driver's connection, open the *sql.DB with sql.OpenDB on a *driver.Connector and keep that connector)")
		}
		c = pc.c
		return nil
	})
	return c, err
}

// probeSQL is the health probe's query: in recovery, replayed up to where,
// the replay delay in seconds (0 when it replayed all it received; NULL
// before it replayed any transaction), and since when the server runs (a
// restarted replica may be behind what it had replayed).
const probeSQL = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
	CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
	ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,
	pg_postmaster_start_time()::text`
