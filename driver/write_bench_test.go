package driver_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/pgwait/pgwait/internal/lsn"
)

// The write path's cost on the client, side by side: the same autocommit
// UPDATE of one row through pgwait (which captures the commit's LSN in the
// write's round trip), through pgx stdlib (no capture), and through pgconn
// alone with the capture pgwait does (BEGIN, the UPDATE, COMMIT, the
// prepared LSN query, one Sync): the floor pgwait's write cannot go below
// without sending less. With -count the variants interleave, so that their
// ratios come from one run:
//
//	go test ./driver -run '^$' -bench 'Write$' -benchmem -count 6
//	go test ./driver -run '^$' -bench 'Write$/pgwait' -benchtime 20000x -memprofile mem.out -cpuprofile cpu.out
//
// On a busy machine ns/op swings more between runs than the variants
// differ; BenchmarkWriteInterleaved runs one write of each variant per
// iteration, in rotating order, and reports each one's median latency and
// the ratios of the medians, which drift in the machine's load moves
// together:
//
//	go test ./driver -run '^$' -bench 'WriteInterleaved' -benchtime 5000x
//
// cpu-ns/op is the benchmark process's CPU time per operation (user and
// system): the client's own cost, steadier than ns/op on a shared machine
// where the servers' time dominates.
//
// BenchmarkNoWaitRead does the same for a read on the replica that needs no
// wait (the connection has written nothing).

const (
	benchUpdate = "UPDATE bench_write SET n = $1 WHERE id = $2"
	benchSelect = "SELECT n FROM bench_write WHERE id = $1"
)

var benchTable struct {
	once sync.Once
	err  error
}

// benchSetup creates the benchmarks' table, a row per variant, and waits
// until the replica has it.
func benchSetup(b *testing.B) {
	c := shared(b)
	benchTable.once.Do(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, c.PrimaryDSN())
		if err != nil {
			benchTable.err = err
			return
		}
		defer conn.Close(ctx)
		if _, err = conn.Exec(ctx, "CREATE TABLE bench_write (id int PRIMARY KEY, n bigint NOT NULL) WITH (fillfactor = 50)"); err == nil {
			_, err = conn.Exec(ctx, "INSERT INTO bench_write SELECT g, 0 FROM generate_series(1, 10) g")
		}
		var at string
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&at)
		}
		if err == nil {
			err = c.WaitReplayed(ctx, 0, at)
		}
		benchTable.err = err
	})
	if benchTable.err != nil {
		b.Fatal(benchTable.err)
	}
}

// benchDB opens a handle of one idle connection, kept warm.
func benchDB(b *testing.B, driverName, dsn string) *sql.DB {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	return db
}

func BenchmarkWrite(b *testing.B) {
	c := shared(b)
	benchSetup(b)
	ctx := context.Background()
	loop := func(b *testing.B, write func(n int64) error) {
		for n := range int64(3) { // prepare, warm up
			if err := write(-n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		var n int64
		for b.Loop() {
			n++
			if err := write(n); err != nil {
				b.Fatal(err)
			}
		}
	}
	dbWrite := func(db *sql.DB, id int) func(int64) error {
		return func(n int64) error {
			res, err := db.ExecContext(ctx, benchUpdate, n, id)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k != 1 {
				return fmt.Errorf("updated %d rows", k)
			}
			return nil
		}
	}
	b.Run("pgwait", func(b *testing.B) {
		loop(b, dbWrite(benchDB(b, "pgwait", dsnFor(b, c)), 1))
	})
	b.Run("pgx-stdlib", func(b *testing.B) {
		loop(b, dbWrite(benchDB(b, "pgx", c.PrimaryDSN()), 2))
	})
	b.Run("floor", func(b *testing.B) {
		f := newWriteFloor(b, c.PrimaryDSN())
		loop(b, func(n int64) error { _, err := f.write(ctx, n, 3); return err })
	})
	b.Run("floor-batch", func(b *testing.B) {
		f := newWriteFloor(b, c.PrimaryDSN())
		loop(b, func(n int64) error { _, err := f.writeBatch(ctx, n, 5); return err })
	})
}

func BenchmarkWriteInterleaved(b *testing.B) {
	c := shared(b)
	benchSetup(b)
	ctx := context.Background()
	pw := benchDB(b, "pgwait", dsnFor(b, c))
	std := benchDB(b, "pgx", c.PrimaryDSN())
	// A connection (a backend) for each variant: a backend that has just
	// answered another variant's write answers the next one sooner.
	floor, floorBatch := newWriteFloor(b, c.PrimaryDSN()), newWriteFloor(b, c.PrimaryDSN())
	names := []string{"pgwait", "pgx-stdlib", "floor", "floor-batch"}
	variants := []func(n int64) error{
		func(n int64) error { _, err := pw.ExecContext(ctx, benchUpdate, n, 6); return err },
		func(n int64) error { _, err := std.ExecContext(ctx, benchUpdate, n, 7); return err },
		func(n int64) error { _, err := floor.write(ctx, n, 8); return err },
		func(n int64) error { _, err := floorBatch.writeBatch(ctx, n, 9); return err },
	}
	took := make([][]time.Duration, len(variants))
	var n int64
	for b.Loop() {
		n++
		for k := range variants {
			i := (int(n) + k) % len(variants)
			start := time.Now()
			if err := variants[i](n); err != nil {
				b.Fatal(err)
			}
			took[i] = append(took[i], time.Since(start))
		}
	}
	// The median, and the 10th percentile: on a shared machine most writes
	// wait for a core at some point, and the fastest tenth shows the cost
	// of the path itself best.
	p10 := make([]float64, len(variants))
	p50 := make([]float64, len(variants))
	for i, d := range took {
		slices.Sort(d)
		p10[i] = float64(d[len(d)/10].Nanoseconds())
		p50[i] = float64(d[len(d)/2].Nanoseconds())
		b.ReportMetric(p50[i]/1e3, "p50-µs-"+names[i])
		if testing.Verbose() {
			q := func(f float64) float64 { return float64(d[int(f*float64(len(d)-1))].Nanoseconds()) / 1e3 }
			b.Logf("%-12s µs: p10 %.0f p25 %.0f p50 %.0f p75 %.0f p90 %.0f p99 %.0f", names[i], q(.10), q(.25), q(.5), q(.75), q(.9), q(.99))
		}
	}
	for _, r := range [][2]int{{0, 1}, {0, 2}, {0, 3}, {2, 1}} {
		b.ReportMetric(p50[r[0]]/p50[r[1]], names[r[0]]+"/"+names[r[1]]+"-p50")
		b.ReportMetric(p10[r[0]]/p10[r[1]], names[r[0]]+"/"+names[r[1]]+"-p10")
	}
}

func BenchmarkNoWaitRead(b *testing.B) {
	c := shared(b)
	benchSetup(b)
	ctx := context.Background()
	loop := func(b *testing.B, db *sql.DB) {
		var n int64
		read := func() error { return db.QueryRowContext(ctx, benchSelect, 4).Scan(&n) }
		for range 3 {
			if err := read(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			if err := read(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("pgwait", func(b *testing.B) { loop(b, benchDB(b, "pgwait", dsnFor(b, c))) })
	b.Run("pgx-stdlib", func(b *testing.B) { loop(b, benchDB(b, "pgx", c.ReplicaDSN(0))) })
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// writeFloor is the write as pgwait sends it, over pgconn alone (as the
// benchmark program's "pgconn + capture, tx + one Sync"): every statement
// prepared once, the arguments encoded as text into buffers kept between
// writes.
type writeFloor struct {
	pg                          *pgconn.PgConn
	begin, update, commit, wlsn *pgconn.StatementDescription
	walBlock, walSegment        uint64
	params                      [][]byte
}

func newWriteFloor(b *testing.B, dsn string) *writeFloor {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(ctx) })
	f := &writeFloor{pg: conn.PgConn(), params: make([][]byte, 2)}
	var block, segment string
	err = conn.QueryRow(ctx, "SELECT current_setting('wal_block_size'), (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')").Scan(&block, &segment)
	if err == nil {
		f.walBlock, err = strconv.ParseUint(block, 10, 64)
	}
	if err == nil {
		f.walSegment, err = strconv.ParseUint(segment, 10, 64)
	}
	for _, p := range []struct {
		sd       **pgconn.StatementDescription
		name, sq string
	}{{&f.begin, "floor_begin", "BEGIN"}, {&f.update, "floor_update", benchUpdate}, {&f.commit, "floor_commit", "COMMIT"}, {&f.wlsn, "floor_lsn", "SELECT pg_current_wal_insert_lsn()::text"}} {
		if err == nil {
			*p.sd, err = f.pg.Prepare(ctx, p.name, p.sq, nil)
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *writeFloor) write(ctx context.Context, n int64, id int) (lsn.LSN, error) {
	f.params[0] = strconv.AppendInt(f.params[0][:0], n, 10)
	f.params[1] = strconv.AppendInt(f.params[1][:0], int64(id), 10)
	p := f.pg.StartPipeline(ctx)
	p.SendQueryStatement(f.begin, nil, nil, nil)
	p.SendQueryStatement(f.update, f.params, nil, nil)
	p.SendQueryStatement(f.commit, nil, nil, nil)
	p.SendQueryStatement(f.wlsn, nil, nil, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return 0, err
	}
	var text string
	var err error
	for i := 0; i < 4 && err == nil; i++ {
		var res any
		if res, err = p.GetResults(); err != nil {
			break
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			err = fmt.Errorf("result %d: got %T", i, res)
			break
		}
		for rr.NextRow() {
			text = string(rr.Values()[0])
		}
		var tag pgconn.CommandTag
		if tag, err = rr.Close(); err == nil && i == 1 && tag.RowsAffected() != 1 {
			err = fmt.Errorf("updated %d rows", tag.RowsAffected())
		}
	}
	if err == nil {
		if res, serr := p.GetResults(); serr != nil {
			err = serr
		} else if _, ok := res.(*pgconn.PipelineSync); !ok {
			err = fmt.Errorf("expected a sync, got %T", res)
		}
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return f.end(ctx, text, err)
}

// end finishes a write: rolls back what a failure left open, or returns
// the LSN read (text), mapped back to the end of its record.
func (f *writeFloor) end(ctx context.Context, text string, err error) (lsn.LSN, error) {
	if err != nil {
		if f.pg.TxStatus() != 'I' && !f.pg.IsClosed() {
			_, rerr := f.pg.Exec(ctx, "ROLLBACK").ReadAll()
			err = errors.Join(err, rerr)
		}
		return 0, err
	}
	l, err := lsn.Parse(text)
	if err != nil {
		return 0, err
	}
	return lsn.EndOfRecord(l, f.walBlock, f.walSegment), nil
}

// writeBatch is write with the same messages sent as a pgconn.Batch, read
// through a MultiResultReader rather than a pipeline.
func (f *writeFloor) writeBatch(ctx context.Context, n int64, id int) (lsn.LSN, error) {
	f.params[0] = strconv.AppendInt(f.params[0][:0], n, 10)
	f.params[1] = strconv.AppendInt(f.params[1][:0], int64(id), 10)
	var batch pgconn.Batch
	batch.ExecStatement(f.begin, nil, nil, nil)
	batch.ExecStatement(f.update, f.params, nil, nil)
	batch.ExecStatement(f.commit, nil, nil, nil)
	batch.ExecStatement(f.wlsn, nil, nil, nil)
	mrr := f.pg.ExecBatch(ctx, &batch)
	var text string
	var err error
	i := 0
	for ; mrr.NextResult(); i++ {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			text = string(rr.Values()[0])
		}
		var tag pgconn.CommandTag
		if tag, err = rr.Close(); err == nil && i == 1 && tag.RowsAffected() != 1 {
			err = fmt.Errorf("updated %d rows", tag.RowsAffected())
		}
	}
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	if err == nil && i != 4 {
		err = fmt.Errorf("%d results", i)
	}
	return f.end(ctx, text, err)
}
