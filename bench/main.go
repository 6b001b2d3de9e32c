// Command bench measures pgwait against the alternatives it replaces, side by
// side in one run, on a PostgreSQL 19 primary and streaming replicas that it
// starts on 127.0.0.1 (internal/pgtest; 2 replicas stream, 2 more are
// started for the scale section):
//
//  1. read-after-write latency: pgwait; WAIT FOR LSN alone, pipelined with
//     the SELECT over raw pgconn (the physical limit); polling
//     pg_last_wal_replay_lsn() every 1 ms; reading the primary; a naive
//     replica read (stale reads counted); p50, p99, p99.9 and a CDF image;
//  2. a replica read with nothing to wait for: pgwait against pgx stdlib, with
//     allocations per query;
//  3. the cost of a write: pgwait (LSN captured in the same round trip)
//     against pgx stdlib;
//  4. throughput of write-then-read cycles with 8, 32 and 64 clients: pgwait,
//     primary only, naive replica reads;
//  5. read-after-write with synchronous_commit=off: pgwait against naive;
//  6. primary offload: the servers' CPU time per operation (from /proc) of
//     three workloads (write-then-read, a read-heavy mix, read-only), pgwait
//     on 1 and 2 replicas against primary only;
//  7. server connections per pooled connection for the same workloads
//     (pg_stat_activity);
//  8. the scale of one handle: reads/s of 256 goroutines over 4 replicas,
//     beside pgx stdlib on one, with the most contended locks;
//  9. the consistency levels: read latency and primary transactions per
//     read (pg_stat_database), each level side by side.
//
// The variants of a section run interleaved, in rounds, so that the noise of
// a shared machine hits them all alike. It prints medians, p99 and ratios,
// then one PASS or MISS line per target, and can write the results as a
// markdown table (-out) and PNG charts (-png: a bar chart of the medians,
// and section 1's CDF beside it).
//
// A benchmark reports; it fails on no time. The exit status is 1 on an error
// and 2 when pgwait returned a stale read (a correctness bug).
//
//	go run ./bench                      # full run, about 4 minutes
//	go run ./bench -quick               # tiny run for CI, under 40 s
//	go run ./bench -out docs/benchmarks.md -png docs/benchmarks.png
//
// See bench/README.md for what each number means.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/pgwait/pgwait"
)

// config holds the sizes of a run.
type config struct {
	Raw      int           // read-after-write iterations per variant
	Reads    int           // no-wait reads per variant
	Writes   int           // writes per variant
	Async    int           // read-after-write iterations per variant, synchronous_commit=off
	Batch    int           // iterations of one variant in a row before the next takes over
	Clients  []int         // client counts of the throughput section
	Duration time.Duration // measured time per throughput variant and client count
	Slices   int           // the Duration is cut into this many interleaved slices
	Allocs   int           // queries per variant for the allocation count
	// Section 6 and 7: primary offload and server connections.
	OffloadClients  []int
	OffloadDuration time.Duration // per variant, workload and client count
	OffloadRate     float64       // statements/s every variant offers; 0: 70% of the slowest's closed-loop rate; < 0: closed loop
	// Section 8: scale of one handle.
	ScaleReplicas   int           // replicas the pgwait handle reads
	ScaleGoroutines int           // goroutines reading through one *sql.DB
	ScaleConns      int           // its pool's MaxOpenConns
	ScaleDuration   time.Duration // per variant
	// Section 9: consistency levels.
	Levels      int           // reads per level
	LevelSettle time.Duration // how long the probes measure lag before the levels start
	Sections    map[string]bool
}

var sectionNames = []string{"raw", "noread", "write", "tput", "async", "offload", "scale", "levels"}

func fullConfig() config {
	return config{Raw: 3000, Reads: 6000, Writes: 3000, Async: 300, Batch: 25,
		Clients: []int{8, 32, 64}, Duration: 4 * time.Second, Slices: 4, Allocs: 2000,
		OffloadClients: []int{8, 32, 64}, OffloadDuration: 3 * time.Second,
		ScaleReplicas: 4, ScaleGoroutines: 256, ScaleConns: 128, ScaleDuration: 4 * time.Second,
		Levels: 2000, LevelSettle: 2*pgwait.DefaultHealthInterval + pgwait.DefaultHealthInterval/2}
}

func quickConfig() config {
	return config{Raw: 100, Reads: 300, Writes: 300, Async: 40, Batch: 10,
		Clients: []int{8, 32}, Duration: 300 * time.Millisecond, Slices: 2, Allocs: 200,
		OffloadClients: []int{8}, OffloadDuration: 200 * time.Millisecond, OffloadRate: -1,
		ScaleReplicas: 2, ScaleGoroutines: 256, ScaleConns: 32, ScaleDuration: 200 * time.Millisecond,
		Levels: 40, LevelSettle: 0}
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitStale = 2
)

func realMain(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "tiny sizes, for CI (finishes well under a minute)")
	raw := fs.Int("raw", 0, "read-after-write iterations per variant (default 3000, -quick 100)")
	reads := fs.Int("reads", 0, "no-wait reads per variant (default 6000, -quick 300)")
	writes := fs.Int("writes", 0, "writes per variant (default 3000, -quick 300)")
	async := fs.Int("async", 0, "synchronous_commit=off read-after-write iterations per variant (default 300, -quick 40)")
	batch := fs.Int("batch", 0, "iterations of one variant before the next one's turn (default 25, -quick 10)")
	allocs := fs.Int("allocs", 0, "queries per variant for the allocation count (default 2000, -quick 200)")
	clients := fs.String("clients", "", "client counts of the throughput section (default 8,32,64, -quick 8,32)")
	duration := fs.Duration("duration", 0, "measured time per throughput variant and client count (default 4s, -quick 300ms)")
	slices := fs.Int("slices", 0, "interleaved slices the throughput duration is cut into (default 4, -quick 2)")
	offClients := fs.String("offload-clients", "", "client counts of the primary offload section (default 8,32,64, -quick 8)")
	offDuration := fs.Duration("offload-duration", 0, "measured time per offload variant, workload and client count (default 3s, -quick 200ms)")
	offRate := fs.Float64("offload-rate", 0, "statements per second every offload variant offers, its clients pacing their cycles (default 0: 70% of the slowest variant's closed-loop rate; -1, as -quick: closed loop, each client as fast as it can)")
	scaleReplicas := fs.Int("scale-replicas", 0, "replicas the scale section's pgwait handle reads (default 4, -quick 2)")
	scaleGoroutines := fs.Int("scale-goroutines", 0, "goroutines reading through one *sql.DB in the scale section (default 256)")
	scaleConns := fs.Int("scale-conns", 0, "the scale section's pool size, SetMaxOpenConns (default 128, -quick 32)")
	scaleDuration := fs.Duration("scale-duration", 0, "measured time per scale variant (default 4s, -quick 200ms)")
	levels := fs.Int("levels", 0, "reads per consistency level (default 2000, -quick 40)")
	sections := fs.String("sections", strings.Join(sectionNames, ","), "sections to run: "+strings.Join(sectionNames, ","))
	out := fs.String("out", "", "write the results as markdown to this file")
	png := fs.String("png", "", "write a PNG bar chart of the p50 latencies to this file, and section 1's CDF beside it (x.png: x-cdf.png)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (cluster start excluded) to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile to this file (records every allocation: timings of such a run are distorted)")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return exitError
	}

	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setInt(&cfg.Raw, *raw)
	setInt(&cfg.Reads, *reads)
	setInt(&cfg.Writes, *writes)
	setInt(&cfg.Async, *async)
	setInt(&cfg.Batch, *batch)
	setInt(&cfg.Allocs, *allocs)
	setInt(&cfg.Slices, *slices)
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "offload-rate" { // 0 and below mean something: set only when given
			cfg.OffloadRate = *offRate
		}
	})
	setInt(&cfg.ScaleReplicas, min(*scaleReplicas, maxReplicas))
	setInt(&cfg.ScaleGoroutines, *scaleGoroutines)
	setInt(&cfg.ScaleConns, min(*scaleConns, 128))
	setInt(&cfg.Levels, *levels)
	for _, d := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&cfg.Duration, *duration}, {&cfg.OffloadDuration, *offDuration}, {&cfg.ScaleDuration, *scaleDuration}} {
		if d.v > 0 {
			*d.dst = d.v
		}
	}
	for _, l := range []struct {
		flag, value string
		dst         *[]int
	}{{"clients", *clients, &cfg.Clients}, {"offload-clients", *offClients, &cfg.OffloadClients}} {
		if l.value == "" {
			continue
		}
		counts, err := clientCounts(l.value)
		if err != nil {
			fmt.Fprintf(stderr, "bench: -%s: %v\n", l.flag, err)
			return exitError
		}
		*l.dst = counts
	}
	cfg.Sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		known := false
		for _, k := range sectionNames {
			known = known || k == s
		}
		if !known {
			fmt.Fprintf(stderr, "bench: -sections: unknown section %q; want some of %s\n", s, strings.Join(sectionNames, ","))
			return exitError
		}
		cfg.Sections[s] = true
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 1
		fmt.Fprintln(stderr, "bench: -memprofile records every allocation; the timings of this run are distorted")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var startProfile func() func()
	if *cpuProfile != "" {
		startProfile = func() func() {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(stderr, "bench:", err)
				return func() {}
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(stderr, "bench:", err)
				f.Close()
				return func() {}
			}
			return func() { pprof.StopCPUProfile(); f.Close() }
		}
	}

	res, err := run(ctx, cfg, stdout, startProfile)
	if *memProfile != "" {
		if f, ferr := os.Create(*memProfile); ferr == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		} else {
			fmt.Fprintln(stderr, "bench:", ferr)
		}
	}
	if res != nil {
		res.printTargets(stdout)
		res.command = "go run ./bench " + strings.Join(args, " ")
		if *out != "" && *png != "" && len(res.raw) > 0 {
			if rel, rerr := filepath.Rel(filepath.Dir(*out), cdfPath(*png)); rerr == nil {
				res.cdfImage = filepath.ToSlash(rel)
			}
		}
		if *out != "" {
			if werr := writeMarkdown(*out, res); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintln(stdout, "wrote", *out)
			}
		}
		if *png != "" {
			if werr := writeChart(*png, res); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintln(stdout, "wrote", *png)
			}
		}
		if *png != "" && len(res.raw) > 0 {
			if werr := writeCDF(cdfPath(*png), cdfTitle, res.raw); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Fprintln(stdout, "wrote", cdfPath(*png))
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	if n := res.pgwaitStale(); n > 0 {
		fmt.Fprintf(stderr, "bench: CORRECTNESS: pgwait returned %d stale reads\n", n)
		return exitStale
	}
	return exitOK
}

// clientCounts reads a comma-separated list of client counts.
func clientCounts(s string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 120 {
			return nil, fmt.Errorf("%q is not a client count from 1 to 120", f)
		}
		counts = append(counts, n)
	}
	return counts, nil
}
