package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"syscall"
	"time"
)

// series is what one variant of a latency section measured.
type series struct {
	name    string
	pgwait  bool            // drawn in pgwait's colour
	d       []time.Duration // one sample per iteration
	rounds  []int           // end index in d of each round
	sorted  []time.Duration
	stale   int            // reads that did not see the write before them
	cpu     time.Duration  // process CPU time (user+sys) spent in this variant's rounds
	allocs  float64        // allocations per query, -1 if not measured
	bytes   float64        // bytes allocated per query
	counted map[string]int // what else the variant counted
}

func newSeries(name string, pgwait bool) *series {
	return &series{name: name, pgwait: pgwait, allocs: -1, counted: map[string]int{}}
}

func (s *series) count(what string, n int) { s.counted[what] += n }

func (s *series) sortedSamples() []time.Duration {
	if len(s.sorted) != len(s.d) {
		s.sorted = slices.Clone(s.d)
		slices.Sort(s.sorted)
	}
	return s.sorted
}

// pct returns the q-quantile (0 < q < 1) of the samples, nearest rank.
func (s *series) pct(q float64) time.Duration { return quantile(s.sortedSamples(), q) }

func (s *series) p50() time.Duration { return s.pct(0.50) }
func (s *series) p99() time.Duration { return s.pct(0.99) }

// over counts the samples above d.
func (s *series) over(d time.Duration) int {
	n := 0
	for _, x := range s.d {
		if x > d {
			n++
		}
	}
	return n
}

func (s *series) mean() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range s.d {
		sum += d
	}
	return sum / time.Duration(len(s.d))
}

// cpuPerOp is the client process's CPU time per iteration.
func (s *series) cpuPerOp() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	return s.cpu / time.Duration(len(s.d))
}

// roundMedians returns the median of each round's samples.
func (s *series) roundMedians() []time.Duration {
	var out []time.Duration
	start := 0
	for _, end := range s.rounds {
		r := slices.Clone(s.d[start:end])
		slices.Sort(r)
		out = append(out, quantile(r, 0.5))
		start = end
	}
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ratio compares two series: the ratio of their medians, and the
// interquartile range of the ratios of their round medians, which shows how
// much the machine's noise moved it.
type ratio struct {
	of, to       string
	value        float64 // p50(of) / p50(to)
	roundMedian  float64 // the median of the per-round ratios
	iqrLo, iqrHi float64 // their interquartile range
}

func compare(of, to *series) ratio {
	r := ratio{of: of.name, to: to.name}
	if to.p50() > 0 {
		r.value = float64(of.p50()) / float64(to.p50())
	}
	a, b := of.roundMedians(), to.roundMedians()
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, float64(a[i])/float64(b[i]))
		}
	}
	if len(rs) > 0 {
		slices.Sort(rs)
		r.roundMedian = rs[len(rs)/2]
		r.iqrLo = rs[len(rs)/4]
		r.iqrHi = rs[min(len(rs)-1, 3*len(rs)/4)]
	}
	return r
}

func (r ratio) String() string {
	if r.iqrLo == 0 && r.iqrHi == 0 {
		return fmt.Sprintf("%.2fx", r.value)
	}
	return fmt.Sprintf("%.2fx (per round: median %.2f, IQR %.2f-%.2f)", r.value, r.roundMedian, r.iqrLo, r.iqrHi)
}

// variant is one way of doing what a latency section measures. run does one
// iteration and returns the duration that counts and whether the read was
// stale.
type variant struct {
	s   *series
	run func(ctx context.Context) (time.Duration, bool, error)
}

// interleave runs total iterations of each variant, batch at a time, taking
// turns, the first variant of each round rotating, after warm unmeasured
// iterations each.
func interleave(ctx context.Context, log io.Writer, title string, total, batch, warm int, vs []variant) error {
	for _, v := range vs {
		for range warm {
			if _, _, err := v.run(ctx); err != nil {
				return fmt.Errorf("%s: %s (warm-up): %w", title, v.s.name, err)
			}
		}
	}
	rounds := (total + batch - 1) / batch
	next := time.Now().Add(5 * time.Second)
	for r := range rounds {
		n := min(batch, total-r*batch)
		for k := range vs {
			v := vs[(r+k)%len(vs)]
			cpu0 := cpuTime()
			for range n {
				d, stale, err := v.run(ctx)
				if err != nil {
					return fmt.Errorf("%s: %s: %w", title, v.s.name, err)
				}
				v.s.d = append(v.s.d, d)
				if stale {
					v.s.stale++
				}
			}
			v.s.cpu += cpuTime() - cpu0
			v.s.rounds = append(v.s.rounds, len(v.s.d))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(next) {
			fmt.Fprintf(log, "  %s: round %d of %d\n", title, r+1, rounds)
			next = time.Now().Add(5 * time.Second)
		}
	}
	return nil
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureAllocs counts the heap allocations and bytes per call of op over n
// calls, after a few unmeasured ones, as testing.AllocsPerRun does (one
// goroutine at a time: GOMAXPROCS 1 while it runs).
func measureAllocs(ctx context.Context, n int, op func(ctx context.Context) error) (allocs, bytes float64, err error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range 10 {
		if err := op(ctx); err != nil {
			return 0, 0, err
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if err := op(ctx); err != nil {
			return 0, 0, err
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(after.TotalAlloc-before.TotalAlloc) / float64(n), nil
}

// us formats a duration in microseconds.
func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
