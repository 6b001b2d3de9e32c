package driver

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait/internal/lsn"
	"github.com/pgwait/pgwait/internal/tracker"
)

// healthChecker probes every replica on the connector's health interval over
// a connection of its own: is it reachable, still in recovery, how far has
// it replayed. Probes feed what reads know of each replica (so that they skip
// waits), and put ejected replicas back in rotation once they are healthy and
// caught up. Probes of ejected replicas respect their backoff.
type healthChecker struct {
	c      *Connector
	once   sync.Once
	ctx    context.Context // ends when the connector closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  []*pgconn.PgConn
}

func (h *healthChecker) init(c *Connector) {
	h.c = c
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.conns = make([]*pgconn.PgConn, len(c.replicas))
}

// start starts the probes, once, if there are replicas.
func (h *healthChecker) start() {
	if len(h.c.replicas) == 0 {
		return
	}
	h.once.Do(func() {
		h.wg.Add(1)
		go h.run()
	})
}

func (h *healthChecker) stop() {
	h.cancel()
	h.wg.Wait()
}

func (h *healthChecker) run() {
	defer h.wg.Done()
	defer func() {
		for _, pc := range h.conns {
			if pc != nil {
				closeProbe(pc)
			}
		}
	}()
	t := time.NewTicker(h.c.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for i, r := range h.c.replicas {
			if !h.c.track.DueForProbe(i, now) {
				continue // ejected: wait out the backoff
			}
			h.probe(i, r)
		}
	}
}

// probeTimeout bounds one probe.
func (h *healthChecker) probeTimeout() time.Duration {
	return min(max(2*h.c.cfg.HealthInterval, 200*time.Millisecond), 5*time.Second)
}

func (h *healthChecker) probe(i int, r *replica) {
	ctx, cancel := context.WithTimeout(h.ctx, h.probeTimeout())
	defer cancel()
	replayed, inRecovery, err := h.query(ctx, i, r)
	track, stats := h.c.track, &h.c.stats
	switch {
	case h.ctx.Err() != nil:
		return // closing
	case err != nil:
		r.status.failed(err)
		if track.ProbeFailed(i, tracker.Failed, time.Now()) {
			stats.ejections.Add(1)
		}
	case !inRecovery:
		// Promoted: it no longer follows the primary. Keep it out; a probe
		// after the backoff looks again (it may have been rebuilt).
		if track.ProbeFailed(i, tracker.Promoted, time.Now()) {
			stats.ejections.Add(1)
			stats.promotions.Add(1)
		}
	default:
		track.ProbeOK(i, replayed)
	}
}

// closeTimeout bounds the goodbye sent when a probe connection is closed.
const closeTimeout = time.Second

func closeProbe(pc *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	pc.Close(ctx)
}

func (h *healthChecker) query(ctx context.Context, i int, r *replica) (lsn.LSN, bool, error) {
	pc := h.conns[i]
	if pc == nil || pc.IsClosed() {
		var err error
		pc, err = pgconn.ConnectConfig(ctx, &r.cfg.Config)
		if err != nil {
			return 0, false, err
		}
		h.conns[i] = pc
	}
	res := pc.ExecParams(ctx, probeSQL, nil, nil, nil, nil).Read()
	if res.Err != nil {
		closeProbe(pc)
		h.conns[i] = nil
		return 0, false, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 3 {
		return 0, false, errProbeShape
	}
	if string(res.Rows[0][0]) != "t" || res.Rows[0][1] == nil {
		return 0, false, nil
	}
	r.status.probed(res.Rows[0][2])
	l, err := lsn.Parse(string(res.Rows[0][1]))
	return l, true, err
}

type probeError string

func (e probeError) Error() string { return string(e) }

const errProbeShape = probeError("pgwait: replica health probe returned an unexpected result")
