package main

import (
	"context"
	"errors"
	imagepng "image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwait/pgwait/internal/lsn"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// The Go benchmarks below run one variant at a time, for profiling
// (go test -bench ... -cpuprofile / -memprofile) and for allocation counts in
// go test's own format; the program's interleaved runs are what to compare.
// They share one cluster, started by the first benchmark that needs it.
//
//	go test ./bench -run '^$' -bench . -benchmem
//	go test ./bench -run '^$' -bench 'NoWaitRead/pgwait' -benchtime 20000x -cpuprofile cpu.out

var shared struct {
	once sync.Once
	env  *env
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		shared.env.close()
	}
	os.Exit(code)
}

func benchEnv(b *testing.B) *env {
	b.Helper()
	return benchEnvT(b)
}

func benchEnvT(t testing.TB) *env {
	t.Helper()
	shared.once.Do(func() { shared.env, shared.err = startEnv(context.Background(), 2) })
	if shared.err != nil {
		if errors.Is(shared.err, pgtest.ErrNoPostgres) && !pgtest.Required() {
			t.Skip(shared.err)
		}
		t.Fatal(shared.err)
	}
	return shared.env
}

// reportCPU reports the process's CPU time per operation since cpu0: what
// the client side costs, apart from waiting for the server.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkNoWaitRead(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	ids, err := e.rows(1)
	if err != nil {
		b.Fatal(err)
	}
	id := ids[0]
	b.Run("pgwait", func(b *testing.B) {
		db, err := e.pgwait(2, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		read := dbRead(db, id)
		if _, err := read(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, err := read(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx-stdlib", func(b *testing.B) {
		db, err := e.replica(2)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		read := dbRead(db, id)
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, err := read(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgconn", func(b *testing.B) {
		rr, err := newRawReplica(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rr.close()
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if _, err := rr.read(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	ids, err := e.rows(6)
	if err != nil {
		b.Fatal(err)
	}
	loop := func(b *testing.B, write func(context.Context, int64) error) {
		var n int64
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			n++
			if err := write(ctx, n); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("pgwait", func(b *testing.B) {
		db, err := e.pgwait(2, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		loop(b, dbWrite(db, ids[0]))
	})
	b.Run("pgx-stdlib", func(b *testing.B) {
		db, err := e.primary(2, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		loop(b, dbWrite(db, ids[1]))
	})
	b.Run("pgconn", func(b *testing.B) {
		rp, err := newRawPrimary(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rp.close()
		loop(b, func(ctx context.Context, n int64) error { return rp.write(ctx, ids[2], n) })
	})
	b.Run("pgconn-capture", func(b *testing.B) {
		rp, err := newRawPrimary(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rp.close()
		loop(b, func(ctx context.Context, n int64) error { _, err := rp.writeCapture(ctx, ids[3], n); return err })
	})
	b.Run("pgconn-capture-tx", func(b *testing.B) {
		rp, err := newRawPrimary(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rp.close()
		loop(b, func(ctx context.Context, n int64) error { _, err := rp.writeCaptureTx(ctx, ids[4], n); return err })
	})
	b.Run("pgconn-capture-tx-batch", func(b *testing.B) {
		rp, err := newRawPrimary(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rp.close()
		loop(b, func(ctx context.Context, n int64) error { _, err := rp.writeCaptureTxBatch(ctx, ids[5], n); return err })
	})
}

// BenchmarkReadAfterWrite times a write and the read of it, both.
func BenchmarkReadAfterWrite(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	ids, err := e.rows(2)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pgwait", func(b *testing.B) {
		db, err := e.pgwait(2, "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		write, read := dbWrite(db, ids[0]), dbRead(db, ids[0])
		var n int64
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			n++
			if err := write(ctx, n); err != nil {
				b.Fatal(err)
			}
			if got, err := read(ctx); err != nil || got != n {
				b.Fatalf("read %d, %v; want %d", got, err, n)
			}
		}
	})
	b.Run("wait-for-lsn-alone", func(b *testing.B) {
		rp, err := newRawPrimary(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rp.close()
		rr, err := newRawReplica(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		defer rr.close()
		var n int64
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			n++
			l, err := rp.writeCapture(ctx, ids[1], n)
			if err != nil {
				b.Fatal(err)
			}
			if got, status, err := rr.waitRead(ctx, l, ids[1]); err != nil || got != n && status != "timeout" {
				b.Fatalf("read %d, %v; want %d", got, err, n)
			}
		}
	})
}

// TestBaselines checks that the raw baselines do what they claim: each way of
// capturing the LSN returns one that, waited for on the replica, shows the
// write.
func TestBaselines(t *testing.T) {
	e := benchEnvT(t)
	ctx := t.Context()
	rp, err := newRawPrimary(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.close()
	rr, err := newRawReplica(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.close()
	ids, err := e.rows(1)
	if err != nil {
		t.Fatal(err)
	}
	captures := map[string]func(context.Context, int, int64) (lsn.LSN, error){
		"two syncs":          rp.writeCapture,
		"prepared LSN query": rp.writeCapturePrepared,
		"in a transaction":   rp.writeCaptureTx,
		"as a batch":         rp.writeCaptureTxBatch,
	}
	var n int64
	for name, capture := range captures {
		for range 50 {
			n++
			l, err := capture(ctx, ids[0], n)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if st := rp.pg.TxStatus(); st != 'I' {
				t.Fatalf("%s: transaction status %c after the write, want I", name, st)
			}
			got, status, err := rr.waitRead(ctx, l, ids[0])
			if err != nil || status == "success" && got != n {
				t.Fatalf("%s: read %d (%s, %v) after waiting for %s; want %d", name, got, status, err, l, n)
			}
		}
		if got, err := rr.read(ctx, ids[0]); err != nil || got != n {
			t.Fatalf("%s: read %d, %v; want %d", name, got, err, n)
		}
	}
	// In a transaction, a write that fails is rolled back, nothing after it
	// runs, and the connection is left idle.
	failing, err := rp.pg.Prepare(ctx, "bench_failing", "UPDATE bench SET n = n + 1 WHERE id = $1 AND 1/0 = 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.captureTx(ctx, failing, [][]byte{[]byte(strconv.Itoa(ids[0]))}); err == nil {
		t.Fatal("a failing UPDATE: no error")
	}
	if st := rp.pg.TxStatus(); st != 'I' {
		t.Fatalf("transaction status %c after a failed write, want I", st)
	}
	if got, err := rr.read(ctx, ids[0]); err != nil || got != n {
		t.Fatalf("after the failed write: read %d, %v; want %d", got, err, n)
	}
	l, err := rp.writeCaptureTx(ctx, ids[0], n+1)
	if err != nil {
		t.Fatalf("a write after the failed one: %v", err)
	}
	// The same as a batch.
	if _, err := rp.captureTxBatch(ctx, failing, [][]byte{[]byte(strconv.Itoa(ids[0]))}); err == nil {
		t.Fatal("a failing UPDATE in a batch: no error")
	}
	if st := rp.pg.TxStatus(); st != 'I' {
		t.Fatalf("transaction status %c after a failed batch, want I", st)
	}
	// The replica waits for the write before the failed batch: it must
	// read that write's value, not the failed batch's.
	if got, status, err := rr.waitRead(ctx, l, ids[0]); err != nil || status != "success" || got != n+1 {
		t.Fatalf("after the failed batch: read %d (%s, %v) after waiting for %s; want %d", got, status, err, l, n+1)
	}
	if _, err := rp.writeCaptureTxBatch(ctx, ids[0], n+2); err != nil {
		t.Fatalf("a batch after the failed one: %v", err)
	}
}

// TestRun runs every section with tiny sizes and checks what the program
// promises: no error, no stale read from pgwait, a markdown file and a PNG.
// It checks no time: a benchmark reports, it does not judge.
func TestRun(t *testing.T) {
	e := benchEnvT(t)
	cfg := config{Raw: 20, Reads: 40, Writes: 30, Async: 6, Batch: 5, Clients: []int{2, 4},
		Duration: 200 * time.Millisecond, Slices: 2, Allocs: 20,
		OffloadClients: []int{2}, OffloadDuration: 100 * time.Millisecond,
		ScaleReplicas: 2, ScaleGoroutines: 16, ScaleConns: 4, ScaleDuration: 100 * time.Millisecond,
		Levels: 10, LevelSettle: 100 * time.Millisecond, Sections: map[string]bool{}}
	for _, s := range sectionNames {
		cfg.Sections[s] = true
	}
	var log strings.Builder
	res, err := runOn(t.Context(), e, cfg, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if n := res.pgwaitStale(); n != 0 {
		t.Fatalf("pgwait returned %d stale reads\n%s", n, log.String())
	}
	for _, s := range [][]*series{res.raw, res.noWait, res.write, res.async} {
		for _, v := range s {
			if len(v.d) == 0 {
				t.Errorf("%s: no samples", v.name)
			}
		}
	}
	if want := len(cfg.Clients) * 4; len(res.tput) != want {
		t.Errorf("%d throughput rows, want %d", len(res.tput), want)
	}
	if want := len(workloads) * 3; len(res.offload) != want {
		t.Errorf("%d offload rows, want %d", len(res.offload), want)
	}
	for _, o := range res.offload {
		if o.ops == 0 || o.primaryCPU.Total <= 0 && o.name == offPrimary || len(o.replicaCPU) != 2 {
			t.Errorf("offload %s, %s: %d ops, primary CPU %v, %d replicas measured", o.workload, o.name, o.ops, o.primaryCPU.Total, len(o.replicaCPU))
		}
		if o.open == 0 || o.conns.total() == 0 {
			t.Errorf("offload %s, %s: %d pooled connections, %d on the servers", o.workload, o.name, o.open, o.conns.total())
		}
	}
	if res.scale == nil || len(res.scale.variants) != 2 {
		t.Errorf("scale: %+v", res.scale)
	} else {
		for _, v := range res.scale.variants {
			if v.reads == 0 {
				t.Errorf("scale: %s made no read", v.name)
			}
		}
	}
	if len(res.levels) != 5 {
		t.Errorf("%d consistency levels, want 5", len(res.levels))
	}
	for _, l := range res.levels {
		if len(l.s.d) == 0 {
			t.Errorf("level %s: no samples", l.s.name)
		}
		if l.level.IsPrimary() && l.perRead < 0.9 {
			t.Errorf("level Primary: %.2f primary transactions per read, want at least 1", l.perRead)
		}
	}
	if len(res.targets()) == 0 {
		t.Error("no targets")
	}
	dir := t.TempDir()
	md, png := filepath.Join(dir, "b.md"), filepath.Join(dir, "b.png")
	if err := writeMarkdown(md, res); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(md); err != nil || !strings.Contains(string(b), "| PASS |") && !strings.Contains(string(b), "| MISS |") {
		t.Errorf("markdown without a target line (%v):\n%s", err, b)
	}
	if err := writeChart(png, res); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(png)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := imagepng.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() < 200 {
		t.Errorf("chart is %v", b)
	}
	cdf := cdfPath(png)
	if err := writeCDF(cdf, cdfTitle, res.raw); err != nil {
		t.Fatal(err)
	}
	f, err = os.Open(cdf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err = imagepng.Decode(f); err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() != cdfHeight {
		t.Errorf("CDF chart is %v", b)
	}
}
