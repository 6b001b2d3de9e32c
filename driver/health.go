package driver

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait/internal/lsn"
	"github.com/pgwait/pgwait/internal/tracker"
)

// healthChecker probes each replica on the connector's health interval, in a
// loop of its own over a connection of its own (so that one hung replica
// delays no news of the others): is it reachable, still in recovery, how far
// has it replayed. Probes feed what reads know of each replica (so that they
// skip waits), put ejected replicas back in rotation once they are healthy
// and caught up (respecting their backoff), and tell reads whether a replica
// that is slow to answer is alive (aliveSince).
//
// It also keeps a connection to the primary to read its current WAL position
// (primaryPosition): on the health interval, so that tokens from other
// processes are usually known to be honest without a round trip, and on
// demand, coalesced, to verify a token ahead of everything seen.
type healthChecker struct {
	c      *Connector
	once   sync.Once
	ctx    context.Context // ends when the connector closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// started is set once start ran: replicas added later get their loop
	// from add. primaryProbed, under the connector's repMu, once the
	// primary's loop runs.
	started       atomic.Bool
	primaryProbed bool

	// primary is the position probe's connection, guarded by the one token
	// in primarySem; lastAt is when its last position read began (a read
	// that began after a caller asked covers everything committed before).
	primarySem chan struct{}
	primary    *pgconn.PgConn
	sizes      [2]uint64 // WAL block and segment sizes of the primary
	system     string    // its system identifier
	lastAt     time.Time
}

func (h *healthChecker) init(c *Connector) {
	h.c = c
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.primarySem = make(chan struct{}, 1)
}

// start starts the probes, once: a loop per replica, and one for the
// primary's position.
func (h *healthChecker) start() {
	h.once.Do(func() {
		h.c.repMu.Lock()
		defer h.c.repMu.Unlock()
		for _, r := range h.c.replicaList() {
			h.add(r)
		}
		for _, s := range h.c.sources {
			h.addSource(s)
		}
		h.started.Store(true)
	})
}

// add starts the probe loop of a replica (under the connector's repMu), and
// the primary's with the first one: a handle without replicas probes
// nothing.
func (h *healthChecker) add(r *replica) {
	if h.ctx.Err() != nil {
		return
	}
	if !h.primaryProbed {
		h.primaryProbed = true
		h.wg.Add(1)
		go h.primaryLoop()
	}
	h.wg.Add(1)
	go h.probeLoop(r.index, r)
}

// stop ends the probes and closes their connections.
func (h *healthChecker) stop() {
	h.cancel()
	h.wg.Wait()
	h.primarySem <- struct{}{}
	if h.primary != nil {
		closeProbe(h.primary)
		h.primary = nil
	}
	<-h.primarySem
}

// probeTimeout bounds one probe.
func (h *healthChecker) probeTimeout() time.Duration {
	return min(max(2*h.c.cfg.HealthInterval, 500*time.Millisecond), 5*time.Second)
}

// aliveSince reports whether replica r answered a probe after t.
func (h *healthChecker) aliveSince(r *replica, t time.Time) bool {
	return r.alive.Load() > t.UnixNano()
}

func (h *healthChecker) probeLoop(i int, r *replica) {
	defer h.wg.Done()
	var pc *pgconn.PgConn
	defer func() {
		if pc != nil {
			closeProbe(pc)
		}
	}()
	h.every(func() bool {
		if r.removed.Load() {
			return false // its connection closes on the way out
		}
		if h.c.track.DueForProbe(i, time.Now()) { // else ejected: wait out the backoff
			pc = h.probe(i, r, pc)
		}
		return true
	})
}

// every runs f on the health interval until the checker stops or f returns
// false.
func (h *healthChecker) every(f func() bool) {
	t := time.NewTicker(h.c.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		if !f() {
			return
		}
	}
}

// probe probes replica i over pc (nil: connect first) and returns the
// connection to use next time (nil after a failure).
func (h *healthChecker) probe(i int, r *replica, pc *pgconn.PgConn) *pgconn.PgConn {
	ctx, cancel := context.WithTimeout(h.ctx, h.probeTimeout())
	defer cancel()
	replayed, inRecovery, incarnation, pc, err := queryReplica(ctx, r, pc)
	track, stats := h.c.track, &h.c.stats
	switch {
	case h.ctx.Err() != nil:
		return pc // closing
	case isOutOfSlots(err):
		// Alive but full: the pooled connections it already serves work.
		// Nothing is learned of its position.
		r.alive.Store(time.Now().UnixNano())
	case err != nil:
		r.status.failed(err)
		if track.ProbeFailed(i, tracker.Failed, time.Now()) {
			stats.ejections.Add(1)
		}
	case !inRecovery:
		// Promoted: it no longer follows the primary. Keep it out; a probe
		// after the backoff looks again (it may have been rebuilt).
		r.alive.Store(time.Now().UnixNano())
		if track.ProbeFailed(i, tracker.Promoted, time.Now()) {
			stats.ejections.Add(1)
			stats.promotions.Add(1)
		}
	default:
		r.alive.Store(time.Now().UnixNano())
		track.ProbeOK(i, replayed, incarnation, time.Now())
	}
	return pc
}

// queryReplica asks a replica whether it is in recovery, how far it has
// replayed and since when it runs, connecting first when pc is nil; on
// failure the connection is closed and nil returned.
func queryReplica(ctx context.Context, r *replica, pc *pgconn.PgConn) (replayed lsn.LSN, inRecovery bool, incarnation string, _ *pgconn.PgConn, err error) {
	if pc == nil || pc.IsClosed() {
		pc, err = pgconn.ConnectConfig(ctx, probeConfig(&r.cfg.Config))
		if err != nil {
			return 0, false, "", nil, err
		}
	}
	res := pc.ExecParams(ctx, probeSQL, nil, nil, nil, nil).Read()
	if res.Err != nil {
		closeProbe(pc)
		return 0, false, "", nil, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 4 {
		closeProbe(pc)
		return 0, false, "", nil, errProbeShape
	}
	row := res.Rows[0]
	if string(row[0]) != "t" || row[1] == nil {
		return 0, false, "", pc, nil
	}
	r.status.probed(row[2])
	replayed, err = lsn.Parse(string(row[1]))
	return replayed, true, string(row[3]), pc, err
}

// primaryLoop reads the primary's WAL position on the health interval.
func (h *healthChecker) primaryLoop() {
	defer h.wg.Done()
	h.every(func() bool {
		ctx, cancel := context.WithTimeout(h.ctx, h.probeTimeout())
		defer cancel()
		h.primaryPosition(ctx)
		return true
	})
}

// primaryPosition reads the primary's current WAL position (mapped past page
// headers, as captures are) and tells the tracker. Concurrent callers share
// one read: a caller that waited for another's read, begun after its own
// call (so covering every commit before the call), takes that result.
func (h *healthChecker) primaryPosition(ctx context.Context) error {
	called := time.Now()
	select {
	case h.primarySem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.primarySem }()
	if h.lastAt.After(called) {
		return nil // read for us while we waited
	}
	pc := h.primary
	if pc == nil || pc.IsClosed() {
		var err error
		pc, err = pgconn.ConnectConfig(ctx, probeConfig(&h.c.cfg.Primary.Config))
		if err != nil {
			return err
		}
		h.primary = pc
		row, err := h.primaryRow(ctx, sizesQuery, 2)
		if err != nil {
			return err
		}
		h.sizes[0], _ = strconv.ParseUint(row[0], 10, 64)
		h.sizes[1], _ = strconv.ParseUint(row[1], 10, 64)
		// Which cluster: a role not allowed to read pg_control_system()
		// still has the timeline, as on pooled connections (side.identify).
		h.system = "unknown"
		res := pc.ExecParams(ctx, "SELECT system_identifier::text FROM pg_control_system()", nil, nil, nil, nil).Read()
		if res.Err == nil && len(res.Rows) == 1 && len(res.Rows[0]) == 1 {
			h.system = string(res.Rows[0][0])
		}
	}
	began := time.Now()
	row, err := h.primaryRow(ctx, positionQuery, 2)
	if err != nil {
		return err
	}
	l, err := lsn.Parse(row[0])
	if err != nil {
		return err
	}
	tli, err := strconv.ParseUint(row[1], 16, 32)
	if err != nil {
		return err
	}
	// The probe notices a failover even on a handle that only reads, whose
	// pooled connections never open the primary.
	l = lsn.EndOfRecord(l, h.sizes[0], h.sizes[1])
	if h.c.track.ObservePrimary(tracker.Epoch{System: h.system, Timeline: uint32(tli), Start: l}) {
		h.c.stats.failovers.Add(1)
	}
	// The sample's time is when the query began: the position read covers
	// every commit before it (not necessarily those until it returned).
	h.c.track.ObservePrimaryPosition(l, began)
	h.lastAt = began
	return nil
}

// probeConfig is cfg for a health probe's connection, which names itself in
// pg_stat_activity: application_name gets " (pgwait probe)" appended. A
// probe never waits long: it leaves out the client check pgwait adds to
// replica connections (which a pooler may refuse).
func probeConfig(cfg *pgconn.Config) *pgconn.Config {
	c := cfg.Copy()
	delete(c.RuntimeParams, "client_connection_check_interval")
	c.RuntimeParams["application_name"] = strings.TrimSpace(cfg.RuntimeParams["application_name"] + " (pgwait probe)")
	return c
}

// primaryRow runs query over the primary probe's connection and returns its
// one row of n columns; on failure the connection is closed.
func (h *healthChecker) primaryRow(ctx context.Context, query string, n int) ([]string, error) {
	res := h.primary.ExecParams(ctx, query, nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != n {
		closeProbe(h.primary)
		h.primary = nil
		if res.Err == nil {
			res.Err = errProbeShape
		}
		return nil, res.Err
	}
	row := make([]string, n)
	for i, v := range res.Rows[0] {
		row[i] = string(v)
	}
	return row, nil
}

// positionQuery reads the primary's WAL insert position and timeline.
const positionQuery = "SELECT pg_current_wal_insert_lsn()::text, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"

// closeTimeout bounds the goodbye sent when a probe connection is closed.
const closeTimeout = time.Second

func closeProbe(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	pc.Close(ctx)
}

type probeError string

func (e probeError) Error() string { return string(e) }

const errProbeShape = probeError("pgwait: health probe returned an unexpected result")
