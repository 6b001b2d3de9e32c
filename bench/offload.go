package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// Section 6: what replicas are for. Many clients run a workload through
// pgwait reading 1 or 2 replicas, and through pgx stdlib on the primary
// alone, in interleaved slices; before and after each slice the benchmark
// reads the CPU time of every server's processes from /proc
// (pgtest.Cluster.CPUTimes), and after a variant's last slice it counts the
// server connections its handle holds (pg_stat_activity, by
// application_name).

// workload is a mix of statements one client runs per cycle: writes of its
// own row, then reads of its own row (checked for staleness) and of other
// clients' rows (not checked: pgwait promises one's own writes, not others').
type workload struct {
	name                        string
	writes, ownReads, otherRead int
}

var workloads = []workload{
	{name: "write-then-read", writes: 1, ownReads: 1},
	{name: "read-heavy: 10 reads per write", writes: 1, ownReads: 2, otherRead: 8},
	{name: "read-only", ownReads: 2, otherRead: 8},
}

func (w workload) ops() int { return w.writes + w.ownReads + w.otherRead }

// The offload variants.
const (
	offPgwait1 = "pgwait, 1 replica"
	offPgwait2 = "pgwait, 2 replicas"
	offPrimary = "primary only"
)

// offRow is what one variant did with one workload at one client count.
type offRow struct {
	workload   string
	clients    int
	name       string
	replicas   int     // replicas the variant reads; 0 for primary only
	offered    float64 // the ops/s its clients were paced at; 0: as fast as they could
	ops        int
	stale      int
	elapsed    time.Duration
	cpu        time.Duration      // the benchmark process's
	primaryCPU pgtest.ServerCPU   // the primary's processes'
	replicaCPU []pgtest.ServerCPU // each streaming replica's processes'
	stats      *pgwait.Stats
	conns      serverConns
	open       int // db.Stats().OpenConnections after the last slice
}

func addCPU(a, b pgtest.ServerCPU) pgtest.ServerCPU {
	return pgtest.ServerCPU{Total: a.Total + b.Total, Backends: a.Backends + b.Backends,
		WALSenders: a.WALSenders + b.WALSenders, Replay: a.Replay + b.Replay, Exited: a.Exited + b.Exited}
}

func perOp(d time.Duration, ops int) time.Duration {
	if ops == 0 {
		return 0
	}
	return d / time.Duration(ops)
}

func (r *offRow) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// replicaShare is the share of pgwait's reads the replicas served.
func (r *offRow) replicaShare() float64 {
	if r.stats == nil || r.stats.ReplicaReads+r.stats.PrimaryReads == 0 {
		return 0
	}
	return float64(r.stats.ReplicaReads) / float64(r.stats.ReplicaReads+r.stats.PrimaryReads)
}

// serverConns counts a handle's server connections: its pool's on the
// primary and on each replica, and pgwait's health probe connections.
type serverConns struct {
	primary, primaryProbe int
	replicas              []int
	replicaProbes         int
}

func (s serverConns) total() int {
	n := s.primary
	for _, r := range s.replicas {
		n += r
	}
	return n
}

// monitor holds one connection to each running server, to read
// pg_stat_activity.
type monitor struct {
	conns []*pgx.Conn // primary, then replicas 0...
}

const monitorApp = "bench monitor"

func newMonitor(ctx context.Context, e *env) (*monitor, error) {
	m := &monitor{}
	dsns := []string{e.primaryDSN}
	for i := range e.streaming {
		dsns = append(dsns, e.cluster.ReplicaDSN(i))
	}
	for _, dsn := range dsns {
		c, err := pgx.Connect(ctx, dsn+" application_name='"+monitorApp+"'")
		if err != nil {
			m.close()
			return nil, err
		}
		m.conns = append(m.conns, c)
	}
	return m, nil
}

func (m *monitor) close() {
	for _, c := range m.conns {
		c.Close(context.Background())
	}
}

// count counts the client backends of application app, and of its pgwait
// probes (application_name with " (pgwait probe)" appended), on each server.
func (m *monitor) count(ctx context.Context, app string) (serverConns, error) {
	var s serverConns
	for i, c := range m.conns {
		var pool, probe int
		err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE application_name = $1),
			count(*) FILTER (WHERE application_name = $1 || ' (pgwait probe)')
			FROM pg_stat_activity WHERE backend_type = 'client backend'`, app).Scan(&pool, &probe)
		if err != nil {
			return s, err
		}
		if i == 0 {
			s.primary, s.primaryProbe = pool, probe
		} else {
			s.replicas = append(s.replicas, pool)
			s.replicaProbes += probe
		}
	}
	return s, nil
}

// offVariant is one way of running a workload; client i owns row ids[i].
type offVariant struct {
	name     string
	app      string // application_name of its connections
	replicas int
	db       *sql.DB
	pgwait   bool
	ids      []int
	seq      []int64
}

// cycle runs one cycle of w for client c: its writes, then its reads.
func (v *offVariant) cycle(ctx context.Context, w workload, c int, rng *rand.Rand) (ops, stale int, err error) {
	id := v.ids[c]
	for range w.writes {
		v.seq[c]++
		if _, err := v.db.ExecContext(ctx, updateSQL, id, v.seq[c]); err != nil {
			return 0, 0, fmt.Errorf("write: %w", err)
		}
	}
	var n int64
	for range w.ownReads {
		if err := v.db.QueryRowContext(ctx, selectSQL, id).Scan(&n); err != nil {
			return 0, 0, fmt.Errorf("read: %w", err)
		}
		if n < v.seq[c] {
			stale++
		}
	}
	for range w.otherRead {
		other := v.ids[rng.IntN(len(v.ids))]
		if err := v.db.QueryRowContext(ctx, selectSQL, other).Scan(&n); err != nil {
			return 0, 0, fmt.Errorf("read: %w", err)
		}
	}
	return w.ops(), stale, nil
}

// slice runs the variant's clients for d, measuring the servers' CPU time
// around it, and adds what they did to row.
//
// With rate > 0 the clients pace their cycles so that the variant offers
// rate statements per second in all (the server CPU per op of variants
// compared at the same load); with 0 each client loops as fast as it can.
func (v *offVariant) slice(ctx context.Context, e *env, w workload, clients int, d time.Duration, rate float64, row *offRow) error {
	p0, r0, err := e.cluster.CPUTimes()
	if err != nil {
		return err
	}
	rngs := make([]*rand.Rand, clients)
	for c := range rngs {
		rngs[c] = rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	}
	var every time.Duration // between the starts of a client's cycles
	if rate > 0 {
		every = time.Duration(float64(clients*w.ops()) / rate * float64(time.Second))
	}
	next := make([]time.Time, clients)
	end := time.Now().Add(d)
	run, err := runClients(ctx, clients, d, func(ctx context.Context, c int) (int, int, error) {
		if every > 0 {
			now := time.Now()
			if next[c].IsZero() {
				next[c] = now.Add(every * time.Duration(c) / time.Duration(clients)) // staggered
			}
			if next[c].After(end) {
				return 0, 0, sleepCtx(ctx, time.Until(end))
			}
			if err := sleepCtx(ctx, time.Until(next[c])); err != nil {
				return 0, 0, err
			}
			next[c] = next[c].Add(every)
			if next[c].Before(now) {
				next[c] = now // behind: no catching up in a burst
			}
		}
		return v.cycle(ctx, w, c, rngs[c])
	})
	if err != nil {
		return fmt.Errorf("%s, %d clients: %s: %w", w.name, clients, v.name, err)
	}
	p1, r1, err := e.cluster.CPUTimes()
	if err != nil {
		return err
	}
	row.ops += run.ops
	row.stale += run.stale
	row.elapsed += run.elapsed
	row.cpu += run.cpu
	row.primaryCPU = addCPU(row.primaryCPU, p1.Sub(p0))
	if row.replicaCPU == nil {
		row.replicaCPU = make([]pgtest.ServerCPU, e.streaming)
	}
	for i := range row.replicaCPU {
		row.replicaCPU[i] = addCPU(row.replicaCPU[i], r1[i].Sub(r0[i]))
	}
	return nil
}

// sectionOffload measures the primary's load per operation (section 6).
func sectionOffload(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	mon, err := newMonitor(ctx, e)
	if err != nil {
		return err
	}
	defer mon.close()
	most := slices.Max(cfg.OffloadClients)
	slice := cfg.OffloadDuration / time.Duration(cfg.Slices)
	warm := min(slice, 100*time.Millisecond)
	for wi, w := range workloads {
		// Fresh handles per workload: the connections a read-only workload
		// opens are its own.
		vs := []*offVariant{
			{name: offPgwait1, replicas: 1, pgwait: true},
			{name: offPgwait2, replicas: 2, pgwait: true},
			{name: offPrimary},
		}
		for i, v := range vs {
			v.app = fmt.Sprintf("bench-%d-%d", wi, i)
			dsn := e.primaryDSN
			driver := "pgx"
			if v.pgwait {
				dsn, driver = e.pgwaitDSNOn(v.replicas), "pgwait"
			}
			// No Ping: pgwait's goes to the primary.
			if v.db, err = e.openLazy(driver, dsn+" application_name="+v.app, most); err != nil {
				return err
			}
			if v.ids, err = e.rows(most); err != nil {
				return err
			}
			v.seq = make([]int64, most)
		}
		for _, clients := range cfg.OffloadClients {
			fmt.Fprintf(log, "6. primary offload, %s, %d clients: %v of each of %d variants, in %d interleaved slices\n",
				w.name, clients, cfg.OffloadDuration, len(vs), cfg.Slices)
			rows := make([]*offRow, len(vs))
			watches := make([]*statsWatch, len(vs))
			// Warm up, as fast as the clients go; then, unless the rate is
			// given, measure each variant's rate likewise and offer 70% of
			// the slowest one's to all.
			rate := max(0, cfg.OffloadRate)
			slowest := 0.0
			for _, v := range vs {
				if err := v.slice(ctx, e, w, clients, warm, 0, &offRow{}); err != nil {
					return fmt.Errorf("warm-up: %w", err)
				}
				if cfg.OffloadRate == 0 {
					probe := &offRow{}
					if err := v.slice(ctx, e, w, clients, min(slice, 500*time.Millisecond), 0, probe); err != nil {
						return fmt.Errorf("calibration: %w", err)
					}
					if r := probe.opsPerSec(); slowest == 0 || r < slowest {
						slowest = r
					}
				}
			}
			if cfg.OffloadRate == 0 {
				rate = 0.7 * slowest
			}
			for i, v := range vs {
				rows[i] = &offRow{workload: w.name, clients: clients, name: v.name, replicas: v.replicas, offered: rate}
				if v.pgwait {
					if watches[i], err = watchStats(ctx, v.db); err != nil {
						return err
					}
				}
			}
			for s := range cfg.Slices {
				for k := range vs {
					i := (s + k) % len(vs)
					if err := vs[i].slice(ctx, e, w, clients, slice, rate, rows[i]); err != nil {
						return err
					}
				}
			}
			// The servers' background, with every handle open and no client
			// running: what a variant's per-op figure carries at low rates.
			p0, _, err := e.cluster.CPUTimes()
			if err != nil {
				return err
			}
			if err := sleepCtx(ctx, slice); err != nil {
				return err
			}
			p1, _, err := e.cluster.CPUTimes()
			if err != nil {
				return err
			}
			res.offloadIdle.cpu += p1.Total - p0.Total
			res.offloadIdle.d += slice
			for i, v := range vs {
				if watches[i] != nil {
					st, err := watches[i].delta(ctx)
					if err != nil {
						return err
					}
					rows[i].stats = &st
				}
				if rows[i].conns, err = mon.count(ctx, v.app); err != nil {
					return err
				}
				rows[i].open = v.db.Stats().OpenConnections
			}
			res.offload = append(res.offload, rows...)
		}
		e.closeDBs()
	}
	return nil
}

// idleCPU is the primary's CPU time while no offload client ran.
type idleCPU struct {
	cpu, d time.Duration
}

// perSecond is the idle CPU in milliseconds per second.
func (i idleCPU) perSecond() float64 {
	if i.d <= 0 {
		return 0
	}
	return float64(i.cpu) / float64(i.d) * 1000
}

// offeredNote says what rate the clients were paced at.
func offeredNote(offered float64) string {
	if offered <= 0 {
		return ", closed loop"
	}
	return fmt.Sprintf(", %.0f offered", offered)
}

// offloadLoad says how the offload clients ran.
func offloadLoad(c config) string {
	switch {
	case c.OffloadRate > 0:
		return fmt.Sprintf("every variant paced at %.0f ops/s", c.OffloadRate)
	case c.OffloadRate < 0:
		return "closed loop: each client as fast as it can"
	}
	return "every variant paced at 70% of the slowest one's closed-loop rate"
}

// offBase is the primary-only row of a workload at a client count.
func (r *results) offBase(row *offRow) *offRow {
	for _, b := range r.offload {
		if b.workload == row.workload && b.clients == row.clients && b.name == offPrimary {
			return b
		}
	}
	return nil
}

// offloadTables builds section 6's tables: CPU, then connections.
func (r *results) offloadTables() []*table {
	if len(r.offload) == 0 {
		return nil
	}
	cpu := &table{title: fmt.Sprintf("6. Primary offload: server CPU per operation (%v per variant, workload and client count; %s)", r.cfg.OffloadDuration, offloadLoad(r.cfg)),
		layout: "lrlrrrrrrrrrrr",
		head: []string{"workload", "clients", "variant", "offered ops/s", "ops/s", "primary CPU/op", "vs primary only", "of which backends", "walsenders",
			"replica 0 CPU/op", "replica 1 CPU/op", "client CPU/op", "reads on replicas", "stale own reads"}}
	conns := &table{title: "7. Server connections per pooled connection (after each variant's last slice)", layout: "lrlrrrrrrr",
		head: []string{"workload", "clients", "variant", "pooled (OpenConnections)", "primary", "primary probe",
			"replica 0", "replica 1", "replica probes", "server / pooled"}}
	for _, row := range r.offload {
		vs, share := "", "0%"
		if b := r.offBase(row); b != nil && perOp(b.primaryCPU.Total, b.ops) > 0 {
			vs = fmt.Sprintf("%.2fx", float64(perOp(row.primaryCPU.Total, row.ops))/float64(perOp(b.primaryCPU.Total, b.ops)))
		}
		if row.stats != nil {
			share = fmt.Sprintf("%.1f%%", 100*row.replicaShare())
		}
		rc := make([]string, 2)
		for i := range rc {
			if i < len(row.replicaCPU) {
				rc[i] = us(perOp(row.replicaCPU[i].Total, row.ops))
			}
		}
		offered := "max"
		if row.offered > 0 {
			offered = fmt.Sprintf("%.0f", row.offered)
		}
		cpu.add(row.workload, fmt.Sprint(row.clients), row.name, offered, fmt.Sprintf("%.0f", row.opsPerSec()),
			us(perOp(row.primaryCPU.Total, row.ops)), vs, us(perOp(row.primaryCPU.Backends, row.ops)), us(perOp(row.primaryCPU.WALSenders, row.ops)), rc[0], rc[1], us(perOp(row.cpu, row.ops)), share, fmt.Sprint(row.stale))
		rn := make([]string, 2)
		for i := range rn {
			if i < len(row.conns.replicas) {
				rn[i] = fmt.Sprint(row.conns.replicas[i])
			}
		}
		ratio := ""
		if row.open > 0 {
			ratio = fmt.Sprintf("%.2f", float64(row.conns.total())/float64(row.open))
		}
		conns.add(row.workload, fmt.Sprint(row.clients), row.name, fmt.Sprint(row.open), fmt.Sprint(row.conns.primary),
			fmt.Sprint(row.conns.primaryProbe), rn[0], rn[1], fmt.Sprint(row.conns.replicaProbes), ratio)
	}
	cpu.notes = append(cpu.notes,
		"Each client owns a row. Write-then-read: update it, read it back. Read-heavy: update it, read it twice, read 8 other clients' rows (10 reads per write). Read-only: the same reads, no write. An op is one statement. pgwait: one *sql.DB for all clients, default handle scope, reading replica 0 (1 replica) or replicas 0 and 1 (2 replicas); primary only: pgx stdlib on the primary. Both replicas stream WAL in every variant.",
		"Load: CPU per op depends on the load (a server busier per wakeup spends less per op: walsenders send several commits at once, backends stay warm), so by default the variants are compared at the same offered load. At each workload and client count every variant first runs as fast as its clients go (warm-up, then a calibration slice of up to 500 ms); then each client paces its cycles so that every variant offers 70% of the slowest variant's rate (offered ops/s). A variant whose ops/s fall well short of the offered rate could not keep up. -offload-rate N offers N ops/s instead; -offload-rate -1 runs closed loop (offered: max).",
		fmt.Sprintf("With every handle open and no client running, the primary used %.1f ms of CPU per second (one idle slice after each workload and client count's slices): the background (checkpointer, WAL writer, autovacuum launcher, the handles' health probes) that every per-op figure carries, the more so the fewer ops/s.", r.offloadIdle.perSecond()),
		"Server CPU: user+system time of each server's processes (the postmaster, every process descended from it, and the children it reaped, from /proc), read before and after each slice, divided by the variant's ops in those slices. It includes the walsenders (one per replica), the WAL writer, the checkpointer and, while other handles are open, their health probes; of which backends is the client backends' share (pgwait's probe connections included), walsenders the WAL senders' (process kinds from their titles). pgwait's handles are not pinged (db.Ping runs on the primary). Stale own reads: reads of the client's own row that returned less than it wrote last; reads of other clients' rows are not checked.")
	conns.notes = append(conns.notes,
		"Counted in pg_stat_activity by application_name (each variant's connections carry their own); pgwait's probes carry the same name with \" (pgwait probe)\" appended. Pooled: the handle's db.Stats().OpenConnections. Server / pooled: pool connections on all servers (probes excluded) per pooled connection. A pgwait pooled connection opens a server connection only when a statement needs it, so a read-only workload should open none on the primary but the probe's.")
	return []*table{cpu, conns}
}

// offloadTargets are section 6's and 7's goals.
func (r *results) offloadTargets() []target {
	var ts []target
	goals := map[string]float64{workloads[0].name: 0.65, workloads[1].name: 0.25}
	for _, row := range r.offload {
		goal, ok := goals[row.workload]
		b := r.offBase(row)
		if !ok || row.name != offPgwait2 || b == nil || perOp(b.primaryCPU.Total, b.ops) == 0 {
			continue
		}
		q := float64(perOp(row.primaryCPU.Total, row.ops)) / float64(perOp(b.primaryCPU.Total, b.ops))
		ts = append(ts, target{fmt.Sprintf("primary CPU/op, %s, %d clients, pgwait with 2 replicas / primary only", row.workload, row.clients),
			fmt.Sprintf("%.2fx (%s vs %s; %.0f vs %.0f ops/s%s), %.1f%% of reads on replicas, %d stale", q, us(perOp(row.primaryCPU.Total, row.ops)), us(perOp(b.primaryCPU.Total, b.ops)),
				row.opsPerSec(), b.opsPerSec(), offeredNote(row.offered), 100*row.replicaShare(), row.stale),
			fmt.Sprintf("<= %.2fx, 0 stale", goal), q <= goal && row.stale == 0})
	}
	var extra []string
	for _, row := range r.offload {
		if row.workload == workloads[2].name && row.name != offPrimary {
			extra = append(extra, fmt.Sprintf("%s at %d clients: %d", row.name, row.clients, row.conns.primary))
		}
	}
	if len(extra) > 0 {
		pass := true
		for _, row := range r.offload {
			pass = pass && !(row.workload == workloads[2].name && row.name != offPrimary && row.conns.primary != 0)
		}
		ts = append(ts, target{"read-only workload, pgwait's pool connections on the primary (probe excluded)", strings.Join(extra, ", "), "0", pass})
	}
	return ts
}
