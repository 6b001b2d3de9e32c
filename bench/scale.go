package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Section 8: the scale of one handle. Many goroutines read random rows
// through one *sql.DB: pgwait over several replicas, and pgx stdlib on one
// replica, in interleaved slices. During every slice the mutex profile is
// on (runtime.SetMutexProfileFraction), and the contention each variant
// caused is read from it: whether the read path serializes on a lock.

// mutexFraction samples one contention event in this many.
const mutexFraction = 10

// scaleVariant is one handle and what its slices measured.
type scaleVariant struct {
	name     string
	db       *sql.DB
	pgwait   bool
	replicas int
	reads    int
	elapsed  time.Duration
	cpu      time.Duration
	lat      []time.Duration
	locks    map[lockSite]lockDelay // contention during its slices, sampled
	rr       float64                // share of reads on replicas, from pgwait's Stats
}

// scaleResult is section 8.
type scaleResult struct {
	goroutines, conns int
	variants          []*scaleVariant
	cyclesPerSec      float64 // of the mutex profile's delays
}

// lockSite is where a contended lock was taken: the first frame outside
// the runtime and sync, and its caller.
type lockSite struct{ at, from string }

type lockDelay struct {
	count  int64
	cycles int64
}

// mutexRecords snapshots the mutex profile by site.
func mutexRecords() map[lockSite]lockDelay {
	n, _ := runtime.MutexProfile(nil)
	recs := make([]runtime.BlockProfileRecord, n+64)
	n, ok := runtime.MutexProfile(recs)
	if !ok {
		return nil
	}
	out := map[lockSite]lockDelay{}
	for _, r := range recs[:n] {
		s := siteOf(r.Stack())
		if strings.HasPrefix(s.at, "main.") {
			continue // the benchmark's own locks
		}
		d := out[s]
		d.count += r.Count
		d.cycles += r.Cycles
		out[s] = d
	}
	return out
}

// siteOf names the frame that took the lock, and its caller.
func siteOf(stack []uintptr) lockSite {
	frames := runtime.CallersFrames(stack)
	var s lockSite
	for {
		f, more := frames.Next()
		fn := f.Function
		if fn != "" && !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "sync.") && !strings.HasPrefix(fn, "internal/sync.") {
			name := fmt.Sprintf("%s (%s:%d)", shortFunc(fn), path.Base(f.File), f.Line)
			if s.at == "" {
				s.at = name
			} else {
				s.from = name
				return s
			}
		}
		if !more {
			return s
		}
	}
}

func shortFunc(fn string) string {
	for _, p := range []string{"github.com/pgwait/pgwait/", "github.com/jackc/pgx/v5/"} {
		fn = strings.TrimPrefix(fn, p)
	}
	return fn
}

// cyclesPerSecond reads the mutex profile's clock rate from its text form.
func cyclesPerSecond() float64 {
	var b bytes.Buffer
	if err := pprof.Lookup("mutex").WriteTo(&b, 1); err != nil {
		return 0
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "cycles/second="); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func (v *scaleVariant) slice(ctx context.Context, goroutines int, d time.Duration) error {
	rngs := make([]*rand.Rand, goroutines)
	for c := range rngs {
		rngs[c] = rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	}
	before := mutexRecords()
	runtime.SetMutexProfileFraction(mutexFraction)
	run, err := runClients(ctx, goroutines, d, func(ctx context.Context, c int) (int, int, error) {
		var n int64
		err := v.db.QueryRowContext(ctx, selectSQL, 1+rngs[c].IntN(tableRows)).Scan(&n)
		return 1, 0, err
	})
	runtime.SetMutexProfileFraction(0)
	if err != nil {
		return fmt.Errorf("%s: %w", v.name, err)
	}
	after := mutexRecords()
	if v.locks == nil {
		v.locks = map[lockSite]lockDelay{}
	}
	for s, a := range after {
		b := before[s]
		if a.count > b.count {
			d := v.locks[s]
			d.count += a.count - b.count
			d.cycles += a.cycles - b.cycles
			v.locks[s] = d
		}
	}
	v.reads += run.ops
	v.elapsed += run.elapsed
	v.cpu += run.cpu
	v.lat = append(v.lat, run.lat...)
	return nil
}

func (v *scaleVariant) readsPerSec() float64 {
	if v.elapsed <= 0 {
		return 0
	}
	return float64(v.reads) / v.elapsed.Seconds()
}

// lockShare is the estimated share of its goroutines' time the variant's
// slices spent waiting for contended locks (the profile samples one event
// in mutexFraction; the estimate is scaled up).
func (v *scaleVariant) lockShare(cyclesPerSec float64, goroutines int) float64 {
	var c int64
	for _, d := range v.locks {
		c += d.cycles
	}
	if cyclesPerSec == 0 || v.elapsed <= 0 {
		return 0
	}
	wait := float64(c) * mutexFraction / cyclesPerSec
	return wait / (float64(goroutines) * v.elapsed.Seconds())
}

// sectionScale measures the reads/s of one handle (section 8).
func sectionScale(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	if err := e.withReplicas(ctx, cfg.ScaleReplicas); err != nil {
		return err
	}
	defer e.withReplicas(context.WithoutCancel(ctx), 2)
	if err := e.replayed(ctx); err != nil {
		return err
	}
	pw, err := e.openLazy("pgwait", e.pgwaitDSNOn(e.streaming)+" application_name=bench-scale", cfg.ScaleConns)
	if err != nil {
		return err
	}
	std, err := e.openLazy("pgx", e.replicaDSN, cfg.ScaleConns)
	if err != nil {
		return err
	}
	vs := []*scaleVariant{
		{name: "pgwait", db: pw, pgwait: true, replicas: e.streaming},
		{name: "pgx stdlib, one replica", db: std, replicas: 1},
	}
	for _, v := range vs {
		v.db.SetMaxOpenConns(cfg.ScaleConns)
	}
	fmt.Fprintf(log, "8. scale: %d goroutines reading through one *sql.DB (%d connections): %v of each of %d variants, in %d interleaved slices\n",
		cfg.ScaleGoroutines, cfg.ScaleConns, cfg.ScaleDuration, len(vs), cfg.Slices)
	slice := cfg.ScaleDuration / time.Duration(cfg.Slices)
	// Warm up until each pool has all its connections open (bounded), then
	// once more: pgwait's pooled connections open each replica's lazily.
	for _, v := range vs {
		warm := &scaleVariant{name: v.name, db: v.db}
		for start := time.Now(); v.db.Stats().OpenConnections < cfg.ScaleConns && time.Since(start) < 10*time.Second; {
			if err := warm.slice(ctx, cfg.ScaleGoroutines, 200*time.Millisecond); err != nil {
				return fmt.Errorf("scale warm-up: %w", err)
			}
		}
		if err := warm.slice(ctx, cfg.ScaleGoroutines, min(slice, 300*time.Millisecond)); err != nil {
			return fmt.Errorf("scale warm-up: %w", err)
		}
	}
	w, err := watchStats(ctx, pw)
	if err != nil {
		return err
	}
	for s := range cfg.Slices {
		for k := range vs {
			if err := vs[(s+k)%len(vs)].slice(ctx, cfg.ScaleGoroutines, slice); err != nil {
				return fmt.Errorf("scale: %w", err)
			}
		}
	}
	st, err := w.delta(ctx)
	if err != nil {
		return err
	}
	if n := st.ReplicaReads + st.PrimaryReads; n > 0 {
		vs[0].rr = float64(st.ReplicaReads) / float64(n)
	}
	vs[1].rr = 1
	res.scale = &scaleResult{goroutines: cfg.ScaleGoroutines, conns: cfg.ScaleConns, variants: vs, cyclesPerSec: cyclesPerSecond()}
	return nil
}

// replayed waits until every streaming replica has replayed what the
// primary has written so far.
func (e *env) replayed(ctx context.Context) error {
	conn, err := e.open("pgx", e.primaryDSN, 1)
	if err != nil {
		return err
	}
	defer conn.Close()
	var at string
	if err := conn.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&at); err != nil {
		return err
	}
	return e.waitReplayed(ctx, at)
}

// scaleTables builds section 8's tables: throughput, then lock sites.
func (r *results) scaleTables() []*table {
	sr := r.scale
	if sr == nil {
		return nil
	}
	t := &table{title: fmt.Sprintf("8. Scale of one handle: %d goroutines reading through one *sql.DB", sr.goroutines), layout: "lrrrrrrrr",
		head: []string{"variant", "replicas", "reads/s", "vs pgx stdlib", "p50", "p99", "client CPU/read", "goroutine time in lock waits", "reads on replicas"}}
	base := sr.variants[len(sr.variants)-1]
	for _, v := range sr.variants {
		s := &series{d: v.lat}
		vs := ""
		if base.readsPerSec() > 0 {
			vs = fmt.Sprintf("%.2fx", v.readsPerSec()/base.readsPerSec())
		}
		t.add(v.name, fmt.Sprint(v.replicas), fmt.Sprintf("%.0f", v.readsPerSec()), vs, us(s.p50()), us(s.p99()),
			us(perOp(v.cpu, v.reads)), fmt.Sprintf("%.0f%%", 100*v.lockShare(sr.cyclesPerSec, sr.goroutines)),
			fmt.Sprintf("%.1f%%", 100*v.rr))
	}
	t.notes = append(t.notes, fmt.Sprintf("Each goroutine reads a random row of the table (SELECT n FROM bench WHERE id = $1), in a loop; the pool is capped at %d connections (SetMaxOpenConns), for both. pgwait's handle never wrote, so no read waits; it spreads reads over its replicas (default balance, least lag). pgx stdlib reads replica 0 alone. Every replica and the client share the machine's CPUs, so more replicas add no CPU here: the figure shows what the handle costs, not what replicas on their own hosts would give. Goroutine time in lock waits: the time the goroutines waited for contended sync.Mutex and RWMutex locks (and runtime locks) during the variant's slices, from the mutex profile (one event in %d sampled, scaled up: an estimate, which can pass 100%%), over goroutines x time; a waiter woken on a busy machine also waits for a CPU, and that counts too.", sr.conns, mutexFraction))
	locks := &table{title: "8b. Most contended lock sites during each variant's slices (mutex profile)", layout: "lrllrr",
		head: []string{"variant", "rank", "lock taken in", "called from", "share of lock wait", "contentions (est.)"}}
	for _, v := range sr.variants {
		type site struct {
			s lockSite
			d lockDelay
		}
		var sites []site
		var total int64
		for s, d := range v.locks {
			sites = append(sites, site{s, d})
			total += d.cycles
		}
		slices.SortFunc(sites, func(a, b site) int { return cmp.Compare(b.d.cycles, a.d.cycles) })
		for i, s := range sites[:min(5, len(sites))] {
			locks.add(v.name, fmt.Sprint(i+1), s.s.at, s.s.from, fmt.Sprintf("%.1f%%", 100*float64(s.d.cycles)/float64(max(1, total))),
				fmt.Sprint(s.d.count*mutexFraction))
		}
	}
	locks.notes = append(locks.notes, "A site is the first function outside the runtime and sync that waited for, or released, a contended lock (Go records contention at the unlock, with the stack of the goroutine that unlocked), and its caller; the benchmark's own locks are left out. Sites in database/sql are the pool's, shared by both variants; a pgwait site high in the list, with more time in lock waits than pgx stdlib's, would mean pgwait's read path serializes on a lock of its own.")
	return []*table{t, locks}
}
