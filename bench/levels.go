package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwait/pgwait"
)

// Section 9: the consistency levels side by side. One pgwait handle per
// level reads its own row at that level, writing it first every
// levelWriteEvery reads; a control handle makes the same writes and no
// reads. Each handle works in a database of its own, so that the primary's
// pg_stat_database counts each one's transactions apart; the handles are
// closed before the counts are read (a backend reports its counts to the
// statistics at most once a second while it runs, and always as it exits).
// What a level costs the primary per read is its database's transactions
// less the control's (the same writes, the same health probes over the same
// time, the same setup), divided by its reads.

const levelWriteEvery = 10

// levelRow is one level's results.
type levelRow struct {
	level    pgwait.Level
	s        *series
	checked  bool // the level promises the caller's own writes: stale reads count
	reads    int  // warm-up included, as the transactions are
	xacts    int64
	perRead  float64 // primary transactions per read, the control's subtracted
	stats    pgwait.Stats
	database string
}

// sectionLevels measures each consistency level (section 9).
func sectionLevels(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	bounded := pgwait.BoundedStaleness(3 * pgwait.DefaultHealthInterval)
	rows := []*levelRow{
		{level: pgwait.ReadYourWrites, checked: true},
		{level: pgwait.Eventual},
		{level: bounded},
		{level: pgwait.Global, checked: true},
		{level: pgwait.Primary, checked: true},
		{}, // the control: writes only
	}
	control := rows[len(rows)-1]
	mon, err := pgx.Connect(ctx, e.primaryDSN)
	if err != nil {
		return err
	}
	defer mon.Close(context.Background())
	t0 := time.Now()
	for i, r := range rows {
		r.database = fmt.Sprintf("bench_level_%d", i)
		if err := levelDatabase(ctx, e, mon, r.database); err != nil {
			return err
		}
	}
	defer func() {
		for _, r := range rows {
			mon.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+r.database+" WITH (FORCE)")
		}
	}()
	if err := e.replayed(ctx); err != nil {
		return err
	}
	fmt.Fprintf(log, "9. consistency levels: %d databases ready in %v; %d reads of each of %d levels, interleaved\n",
		len(rows), time.Since(t0).Round(time.Millisecond), cfg.Levels, len(rows)-1)

	dbs := make([]*sql.DB, len(rows))
	var vs []variant
	for i, r := range rows {
		name := "control: writes only"
		if r != control {
			name = levelName(r.level)
		}
		r.s = newSeries(name, false)
		// No Ping: pgwait's goes to the primary.
		if dbs[i], err = e.openLazy("pgwait", e.pgwaitDSNOn(2)+" dbname="+r.database+" application_name=bench-"+r.database, 2); err != nil {
			return err
		}
		db, r := dbs[i], r
		var seq int64
		iter := 0
		lctx := pgwait.WithLevel(ctx, r.level)
		vs = append(vs, variant{s: r.s, run: func(context.Context) (time.Duration, bool, error) {
			iter++
			if iter%levelWriteEvery == 1 {
				seq++
				if _, err := db.ExecContext(ctx, updateSQL, 1, seq); err != nil {
					return 0, false, fmt.Errorf("write: %w", err)
				}
			}
			if r == control {
				return 0, false, nil
			}
			r.reads++
			var n int64
			t0 := time.Now()
			err := db.QueryRowContext(lctx, selectSQL, 1).Scan(&n)
			d := time.Since(t0)
			if err != nil {
				return 0, false, fmt.Errorf("read: %w", err)
			}
			return d, r.checked && n < seq, nil
		}})
	}
	watches := make([]*statsWatch, len(rows))
	for i := range rows {
		if watches[i], err = watchStats(ctx, dbs[i]); err != nil {
			return err
		}
	}
	// Warm up (connections, prepared statements, the probes' first
	// rounds), then let the probes measure each replica's lag, which a
	// bounded read needs to be served by a replica: the levels are compared
	// in the steady state, not in a handle's first seconds.
	for _, v := range vs {
		for range 5 {
			if _, _, err := v.run(ctx); err != nil {
				return fmt.Errorf("consistency levels: %s (warm-up): %w", v.s.name, err)
			}
		}
	}
	if err := sleepCtx(ctx, cfg.LevelSettle); err != nil {
		return err
	}
	if err := interleave(ctx, log, "consistency levels", cfg.Levels, cfg.Batch, 0, vs); err != nil {
		return err
	}
	for i, r := range rows {
		if r.stats, err = watches[i].delta(ctx); err != nil {
			return err
		}
	}
	// Close the handles and wait for their backends to exit, which reports
	// their counts; then read them.
	var pids []int
	if err := mon.QueryRow(ctx, "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE datname LIKE 'bench_level_%'").Scan(&pids); err != nil {
		return err
	}
	for _, db := range dbs {
		db.Close()
	}
	if err := waitExited(ctx, pids); err != nil {
		return err
	}
	for _, r := range rows {
		if err := mon.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", r.database).Scan(&r.xacts); err != nil {
			return err
		}
	}
	for _, r := range rows[:len(rows)-1] {
		r.perRead = float64(r.xacts-control.xacts) / float64(max(1, r.reads))
	}
	res.levels = rows[:len(rows)-1]
	res.levelControl = control
	return nil
}

// levelDatabase creates a database with its own bench table of a few rows,
// which autovacuum leaves alone (its transactions would count). FILE_COPY
// copies the template's files rather than writing them all to the WAL, for
// the replicas to replay: quicker here.
func levelDatabase(ctx context.Context, e *env, mon *pgx.Conn, name string) error {
	if _, err := mon.Exec(ctx, "CREATE DATABASE "+name+" STRATEGY FILE_COPY"); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, e.primaryDSN+" dbname="+name)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, q := range []string{tableSQL, "ALTER TABLE bench SET (autovacuum_enabled = off)", "INSERT INTO bench SELECT g, 0 FROM generate_series(1, 10) g"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// waitExited waits until the processes pids have exited (or are zombies
// their parent has yet to reap), bounded by ctx and 10 s.
func waitExited(ctx context.Context, pids []int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, pid := range pids {
		for {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil {
				break
			}
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("server process %d still running: %w", pid, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// levelName is a level as the Go API spells it.
func levelName(l pgwait.Level) string {
	switch {
	case l.IsEventual():
		return "Eventual"
	case l.IsBounded():
		return fmt.Sprintf("BoundedStaleness(%v)", l.Staleness())
	case l.IsGlobal():
		return "Global"
	case l.IsPrimary():
		return "Primary"
	}
	return "ReadYourWrites"
}

// levelTables builds section 9's table.
func (r *results) levelTables() []*table {
	if len(r.levels) == 0 {
		return nil
	}
	t := &table{title: "9. Consistency levels: read latency and primary transactions per read", layout: "lrrrrrrrrr",
		head: []string{"level", "reads", "p50", "p99", "primary xacts/read", "primary reads (pgwait)", "waits", "fallbacks", "stale own reads", "checked"}}
	for _, l := range r.levels {
		checked := "yes"
		if !l.checked {
			checked = "no"
		}
		t.add(l.s.name, fmt.Sprint(len(l.s.d)), us(l.s.p50()), us(l.s.p99()), fmt.Sprintf("%.2f", l.perRead),
			fmt.Sprint(l.stats.PrimaryReads), fmt.Sprint(l.stats.Waits), fmt.Sprint(l.stats.Fallbacks), fmt.Sprint(l.s.stale), checked)
	}
	c := r.levelControl
	t.notes = append(t.notes,
		fmt.Sprintf("One pgwait handle per level (reading replicas 0 and 1, default handle scope) reads its own row at that level (pgwait.WithLevel), and writes it before every %dth read (the write is not timed); the levels run interleaved. Stale own reads: reads that returned less than the handle wrote last, counted against the levels that promise the caller's own writes (ReadYourWrites, Global, Primary); Eventual and BoundedStaleness do not promise them.", levelWriteEvery),
		fmt.Sprintf("Primary xacts/read is measured on the server: each handle works in a database of its own, and its count is pg_stat_database.xact_commit + xact_rollback of that database, read after the handles were closed and their backends had exited (a running backend reports its counts at most once a second, an exiting one always). The levels start %v after the handles' first statements (the full run waits 2.5 health intervals, for the probes to measure each replica's lag: a bounded read goes to the primary until then); those first reads count in the transactions and in the reads. A control handle in a database of its own made the same writes and no reads, with the same health probes over the same time: its count (%d) is subtracted from each level's before dividing by the level's reads (warm-up included). Transactions are not round trips: pgwait runs a statement on the primary as BEGIN, the statement, COMMIT and its position query before one Sync, so a read the primary serves counts 2 transactions in 1 round trip; a Global read's position query (over the health checker's connection, coalesced across concurrent reads) counts 1 in 1. Primary reads (pgwait) is the handle's own count (Stats.PrimaryReads), for comparison.", r.cfg.LevelSettle, c.xacts))
	return []*table{t}
}

func (r *results) levelTargets() []target { return nil }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
