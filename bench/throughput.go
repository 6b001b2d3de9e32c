package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/pgwait/pgwait"
)

// tputRow is what one variant did at one client count.
type tputRow struct {
	clients int
	name    string
	pgwait  bool
	cycles  int           // write-then-read cycles, two statements each
	elapsed time.Duration // measured wall time, all slices
	stale   int
	lat     []time.Duration // one per cycle
	cpu     time.Duration   // the benchmark process's CPU time in the measured slices
	stats   *pgwait.Stats   // pgwait's counters over the measured slices
}

// cpuPerCycle is the client process's CPU time per cycle.
func (r *tputRow) cpuPerCycle() time.Duration {
	if r.cycles == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.cycles)
}

// avgWait is the mean time a pgwait read that waited spent waiting.
func (r *tputRow) avgWait() time.Duration {
	if r.stats == nil || r.stats.Waits == 0 {
		return 0
	}
	return r.stats.WaitTime / time.Duration(r.stats.Waits)
}

func (r *tputRow) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return 2 * float64(r.cycles) / r.elapsed.Seconds()
}

func (r *tputRow) latency(q float64) time.Duration {
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return quantile(s, q)
}

// replicaShare is the share of pgwait's reads a replica served.
func (r *tputRow) replicaShare() float64 {
	if r.stats == nil || r.stats.ReplicaReads+r.stats.PrimaryReads == 0 {
		return 0
	}
	return float64(r.stats.ReplicaReads) / float64(r.stats.ReplicaReads+r.stats.PrimaryReads)
}

// The throughput variants.
const (
	tputPgwait  = "pgwait"
	tputPrimary = "primary only"
	tputNaive   = "naive replica read"
	tputToken   = "pgwait, token scope"
)

// tputVariant is one way of running write-then-read cycles from many
// clients; client i owns row ids[i].
type tputVariant struct {
	name   string
	pgwait *sql.DB // the pgwait handle whose counters to read, or nil
	write  *sql.DB
	read   *sql.DB
	ids    []int
	seq    []int64
	tokens []*pgwait.Token // per client, for pgwait_scope=token
}

// cycle writes the next value to the client's row and reads it back.
func (v *tputVariant) cycle(ctx context.Context, client int) (bool, error) {
	v.seq[client]++
	want := v.seq[client]
	id := v.ids[client]
	if _, err := v.write.ExecContext(ctx, updateSQL, id, want); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	var n int64
	if err := v.read.QueryRowContext(ctx, selectSQL, id).Scan(&n); err != nil {
		return false, fmt.Errorf("read: %w", err)
	}
	return n < want, nil
}

// slice runs clients goroutines doing cycles for d and adds what they did to
// row.
func (v *tputVariant) slice(ctx context.Context, clients int, d time.Duration, row *tputRow) error {
	r, err := runClients(ctx, clients, d, func(ctx context.Context, c int) (int, int, error) {
		if v.tokens != nil {
			ctx = pgwait.WithToken(ctx, v.tokens[c])
		}
		stale, err := v.cycle(ctx, c)
		if stale {
			return 2, 1, err
		}
		return 2, 0, err
	})
	row.elapsed += r.elapsed
	row.cpu += r.cpu
	row.cycles += len(r.lat)
	row.stale += r.stale
	row.lat = append(row.lat, r.lat...)
	if err != nil {
		return fmt.Errorf("%d clients: %s: %w", clients, v.name, err)
	}
	return nil
}

// clientRun is what runClients' clients did.
type clientRun struct {
	ops     int             // statements
	stale   int             // stale reads
	lat     []time.Duration // one per cycle
	elapsed time.Duration
	cpu     time.Duration // the benchmark process's CPU time meanwhile
}

// runClients runs clients goroutines, each calling cycle in a loop for d;
// cycle returns the statements it ran and the stale reads it saw.
func runClients(ctx context.Context, clients int, d time.Duration, cycle func(ctx context.Context, client int) (ops, stale int, err error)) (clientRun, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		run  clientRun
		errs []error
	)
	start := make(chan struct{})
	var deadline time.Time
	for c := range clients {
		wg.Go(func() {
			var mine []time.Duration
			ops, stale := 0, 0
			var err error
			<-start
			for err == nil && ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				var n, s int
				if n, s, err = cycle(ctx, c); err == nil {
					mine = append(mine, time.Since(t0))
					ops += n
					stale += s
				}
			}
			mu.Lock()
			defer mu.Unlock()
			run.ops += ops
			run.stale += stale
			run.lat = append(run.lat, mine...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	cpu0 := cpuTime()
	t0 := time.Now()
	deadline = t0.Add(d)
	close(start)
	wg.Wait()
	run.elapsed = time.Since(t0)
	run.cpu = cpuTime() - cpu0
	if len(errs) > 0 {
		return run, fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
	}
	return run, ctx.Err()
}

// sectionThroughput measures write-then-read cycles from many clients
// (section 4).
func sectionThroughput(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	most := slices.Max(cfg.Clients)
	pw, err := e.pgwait(most, "")
	if err != nil {
		return err
	}
	prim, err := e.primary(most, "")
	if err != nil {
		return err
	}
	repl, err := e.replica(most)
	if err != nil {
		return err
	}
	pwToken, err := e.pgwait(most, "pgwait_scope=token")
	if err != nil {
		return err
	}
	tokens := make([]*pgwait.Token, most)
	for i := range tokens {
		tokens[i] = new(pgwait.Token)
	}
	vs := []*tputVariant{
		{name: tputPgwait, pgwait: pw, write: pw, read: pw},
		{name: tputPrimary, write: prim, read: prim},
		{name: tputNaive, write: prim, read: repl},
		{name: tputToken, pgwait: pwToken, write: pwToken, read: pwToken, tokens: tokens},
	}
	for _, v := range vs {
		if v.ids, err = e.rows(most); err != nil {
			return err
		}
		v.seq = make([]int64, most)
	}
	slice := cfg.Duration / time.Duration(cfg.Slices)
	warm := min(slice, 300*time.Millisecond)
	for _, clients := range cfg.Clients {
		fmt.Fprintf(log, "4. throughput, %d clients: %v of each of %d variants, in %d interleaved slices\n",
			clients, cfg.Duration, len(vs), cfg.Slices)
		rows := make([]*tputRow, len(vs))
		for i, v := range vs {
			rows[i] = &tputRow{clients: clients, name: v.name, pgwait: v.pgwait != nil}
			// Warm up: open the connections, prepare the statements.
			if err := v.slice(ctx, clients, warm, &tputRow{}); err != nil {
				return fmt.Errorf("throughput warm-up: %w", err)
			}
		}
		watches := make([]*statsWatch, len(vs))
		for i, v := range vs {
			if v.pgwait != nil {
				if watches[i], err = watchStats(ctx, v.pgwait); err != nil {
					return err
				}
			}
		}
		for s := range cfg.Slices {
			for k := range vs {
				i := (s + k) % len(vs)
				if err := vs[i].slice(ctx, clients, slice, rows[i]); err != nil {
					return fmt.Errorf("throughput: %w", err)
				}
			}
		}
		for i, w := range watches {
			if w != nil {
				st, err := w.delta(ctx)
				if err != nil {
					return err
				}
				rows[i].stats = &st
			}
		}
		res.tput = append(res.tput, rows...)
	}
	return nil
}
