package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/lsn"
)

// statsDelta is what a pgwait handle counted between two snapshots.
func statsDelta(before, after pgwait.Stats) pgwait.Stats {
	return pgwait.Stats{
		Writes:          after.Writes - before.Writes,
		ReplicaReads:    after.ReplicaReads - before.ReplicaReads,
		PrimaryReads:    after.PrimaryReads - before.PrimaryReads,
		Waits:           after.Waits - before.Waits,
		WaitsSkipped:    after.WaitsSkipped - before.WaitsSkipped,
		WaitTimeouts:    after.WaitTimeouts - before.WaitTimeouts,
		Fallbacks:       after.Fallbacks - before.Fallbacks,
		ReadOnlyRetries: after.ReadOnlyRetries - before.ReadOnlyRetries,
		Promotions:      after.Promotions - before.Promotions,
		ReplicaErrors:   after.ReplicaErrors - before.ReplicaErrors,
		Ejections:       after.Ejections - before.Ejections,
		Failovers:       after.Failovers - before.Failovers,
		WaitTime:        after.WaitTime - before.WaitTime,
	}
}

// statsWatch snapshots a pgwait handle's counters.
type statsWatch struct {
	db     *sql.DB
	before pgwait.Stats
}

func watchStats(ctx context.Context, db *sql.DB) (*statsWatch, error) {
	st, err := pgwaitdriver.StatsOf(ctx, db)
	return &statsWatch{db: db, before: st}, err
}

func (w *statsWatch) delta(ctx context.Context) (pgwait.Stats, error) {
	st, err := pgwaitdriver.StatsOf(ctx, w.db)
	return statsDelta(w.before, st), err
}

// writeThenRead builds a read-after-write variant: each iteration writes the
// next value to row id with write (not timed), then times read from the
// write's acknowledgement to the row in hand.
func writeThenRead(s *series, write func(ctx context.Context, n int64) error, read func(ctx context.Context) (int64, error)) variant {
	var seq int64
	return variant{s: s, run: func(ctx context.Context) (time.Duration, bool, error) {
		seq++
		if err := write(ctx, seq); err != nil {
			return 0, false, fmt.Errorf("write: %w", err)
		}
		t0 := time.Now()
		n, err := read(ctx)
		d := time.Since(t0)
		if err != nil {
			return 0, false, fmt.Errorf("read: %w", err)
		}
		return d, n < seq, nil
	}}
}

func dbWrite(db *sql.DB, id int) func(context.Context, int64) error {
	return func(ctx context.Context, n int64) error {
		_, err := db.ExecContext(ctx, updateSQL, id, n)
		return err
	}
}

func dbRead(db *sql.DB, id int) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, selectSQL, id).Scan(&n)
		return n, err
	}
}

// sectionRaw measures read-after-write latency (section 1).
func sectionRaw(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	pw, err := e.pgwait(2, "")
	if err != nil {
		return err
	}
	prim, err := e.primary(2, "")
	if err != nil {
		return err
	}
	repl, err := e.replica(2)
	if err != nil {
		return err
	}
	// One raw primary and replica connection per raw variant.
	pairs, closePairs, err := rawPairs(ctx, e, 3)
	if err != nil {
		return err
	}
	defer closePairs()
	rp, rr := pairs[0].primary, pairs[0].replica
	rp2, rr2 := pairs[1].primary, pairs[1].replica
	rp3, rr3 := pairs[2].primary, pairs[2].replica
	ids, err := e.rows(6)
	if err != nil {
		return err
	}

	sPgwait := newSeries("pgwait", true)
	sWait := newSeries("WAIT FOR LSN alone", false)
	sPoll := newSeries("poll replay LSN at once, then every 1 ms", false)
	sPollLate := newSeries("poll replay LSN every 1 ms, first after 1 ms", false)
	sPrimary := newSeries("read the primary", false)
	sNaive := newSeries("naive replica read", false)

	// The raw variants capture the LSN with the write and hand it to the read.
	var waitTarget, pollTarget, lateTarget lsn.LSN
	vs := []variant{
		writeThenRead(sPgwait, dbWrite(pw, ids[0]), dbRead(pw, ids[0])),
		writeThenRead(sWait,
			func(ctx context.Context, n int64) error {
				l, err := rp.writeCaptureTx(ctx, ids[1], n)
				waitTarget = l
				return err
			},
			func(ctx context.Context) (int64, error) {
				n, status, err := rr.waitRead(ctx, waitTarget, ids[1])
				if status == "timeout" {
					sWait.count("timeouts", 1)
				}
				return n, err
			}),
		writeThenRead(sPoll,
			func(ctx context.Context, n int64) error {
				l, err := rp2.writeCaptureTx(ctx, ids[2], n)
				pollTarget = l
				return err
			},
			func(ctx context.Context) (int64, error) {
				n, polls, err := rr2.pollRead(ctx, pollTarget, ids[2], false)
				sPoll.count("polls", polls)
				if polls == 1 {
					sPoll.count("first poll enough", 1)
				}
				return n, err
			}),
		writeThenRead(sPollLate,
			func(ctx context.Context, n int64) error {
				l, err := rp3.writeCaptureTx(ctx, ids[5], n)
				lateTarget = l
				return err
			},
			func(ctx context.Context) (int64, error) {
				n, _, err := rr3.pollRead(ctx, lateTarget, ids[5], true)
				return n, err
			}),
		writeThenRead(sPrimary, dbWrite(prim, ids[3]), dbRead(prim, ids[3])),
		writeThenRead(sNaive, dbWrite(prim, ids[4]), dbRead(repl, ids[4])),
	}
	w, err := watchStats(ctx, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "1. read-after-write latency: %d iterations of %d variants, interleaved\n", cfg.Raw, len(vs))
	if err := interleave(ctx, log, "read-after-write", cfg.Raw, cfg.Batch, 20, vs); err != nil {
		return err
	}
	st, err := w.delta(ctx)
	if err != nil {
		return err
	}
	res.raw = []*series{sPgwait, sWait, sPoll, sPollLate, sPrimary, sNaive}
	res.rawStats = st
	return nil
}

// rawPair is a raw primary connection and a raw replica connection.
type rawPair struct {
	primary *rawPrimary
	replica *rawReplica
}

// rawPairs opens n raw pairs; close closes them all.
func rawPairs(ctx context.Context, e *env, n int) (pairs []rawPair, close func(), err error) {
	close = func() {
		for _, p := range pairs {
			p.primary.close()
			p.replica.close()
		}
	}
	for range n {
		rp, err := newRawPrimary(ctx, e)
		if err != nil {
			close()
			return nil, nil, err
		}
		rr, err := newRawReplica(ctx, e)
		if err != nil {
			rp.close()
			close()
			return nil, nil, err
		}
		pairs = append(pairs, rawPair{rp, rr})
	}
	return pairs, close, nil
}

// sectionNoWait measures reads with nothing to wait for (section 2).
func sectionNoWait(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	pw, err := e.pgwait(2, "")
	if err != nil {
		return err
	}
	repl, err := e.replica(2)
	if err != nil {
		return err
	}
	rr, err := newRawReplica(ctx, e)
	if err != nil {
		return err
	}
	defer rr.close()
	ids, err := e.rows(1)
	if err != nil {
		return err
	}
	id := ids[0]
	// One write and a read that waits for it: from then on the handle knows
	// the replica has replayed every write it made, so its reads skip the
	// wait, as an application's do most of the time.
	if _, err := pw.ExecContext(ctx, updateSQL, id, 1); err != nil {
		return err
	}
	if n, err := dbRead(pw, id)(ctx); err != nil || n != 1 {
		return fmt.Errorf("the first read through pgwait returned %d, %v; want 1", n, err)
	}

	sPgwait := newSeries("pgwait", true)
	sStd := newSeries("pgx stdlib", false)
	sRaw := newSeries("pgconn (reference)", false)
	read := func(s *series, r func(context.Context) (int64, error)) variant {
		return variant{s: s, run: func(ctx context.Context) (time.Duration, bool, error) {
			t0 := time.Now()
			n, err := r(ctx)
			return time.Since(t0), n != 1, err
		}}
	}
	pgwaitRead, stdRead := dbRead(pw, id), dbRead(repl, id)
	rawRead := func(ctx context.Context) (int64, error) { return rr.read(ctx, id) }
	vs := []variant{read(sPgwait, pgwaitRead), read(sStd, stdRead), read(sRaw, rawRead)}

	w, err := watchStats(ctx, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "2. reads with nothing to wait for: %d queries of %d variants, interleaved\n", cfg.Reads, len(vs))
	if err := interleave(ctx, log, "no-wait read", cfg.Reads, cfg.Batch, 50, vs); err != nil {
		return err
	}
	for i, r := range []func(context.Context) (int64, error){pgwaitRead, stdRead, rawRead} {
		s := vs[i].s
		if s.allocs, s.bytes, err = measureAllocs(ctx, cfg.Allocs, func(ctx context.Context) error {
			_, err := r(ctx)
			return err
		}); err != nil {
			return fmt.Errorf("allocations: %s: %w", s.name, err)
		}
	}
	st, err := w.delta(ctx)
	if err != nil {
		return err
	}
	res.noWait = []*series{sPgwait, sStd, sRaw}
	res.noWaitStats = st
	return nil
}

// sectionWrite measures the cost of a write (section 3).
func sectionWrite(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	pw, err := e.pgwait(2, "")
	if err != nil {
		return err
	}
	prim, err := e.primary(2, "")
	if err != nil {
		return err
	}
	rp, err := newRawPrimary(ctx, e)
	if err != nil {
		return err
	}
	defer rp.close()
	ids, err := e.rows(7)
	if err != nil {
		return err
	}
	sPgwait := newSeries("pgwait (LSN captured)", true)
	sStd := newSeries("pgx stdlib", false)
	sRaw := newSeries("pgconn (reference)", false)
	sRawCapture := newSeries("pgconn + LSN capture, two Syncs", false)
	sRawPrepared := newSeries("pgconn + capture, prepared LSN query", false)
	sRawTx := newSeries("pgconn + capture, tx + one Sync", false)
	sRawTxBatch := newSeries("pgconn + capture, tx + one Sync, as a batch", false)
	capture := func(f func(context.Context, int, int64) (lsn.LSN, error), id int) func(context.Context, int64) error {
		return func(ctx context.Context, n int64) error { _, err := f(ctx, id, n); return err }
	}
	writes := []func(context.Context, int64) error{
		dbWrite(pw, ids[0]),
		dbWrite(prim, ids[1]),
		func(ctx context.Context, n int64) error { return rp.write(ctx, ids[2], n) },
		capture(rp.writeCapture, ids[3]),
		capture(rp.writeCapturePrepared, ids[4]),
		capture(rp.writeCaptureTx, ids[5]),
		capture(rp.writeCaptureTxBatch, ids[6]),
	}
	all := []*series{sPgwait, sStd, sRaw, sRawCapture, sRawPrepared, sRawTx, sRawTxBatch}
	seqs := make([]int64, len(writes))
	var vs []variant
	for i, wr := range writes {
		vs = append(vs, variant{s: all[i], run: func(ctx context.Context) (time.Duration, bool, error) {
			seqs[i]++
			t0 := time.Now()
			err := wr(ctx, seqs[i])
			return time.Since(t0), false, err
		}})
	}
	w, err := watchStats(ctx, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "3. writes: %d of %d variants, interleaved\n", cfg.Writes, len(vs))
	if err := interleave(ctx, log, "write", cfg.Writes, cfg.Batch, 20, vs); err != nil {
		return err
	}
	for i, wr := range writes {
		s := all[i]
		if s.allocs, s.bytes, err = measureAllocs(ctx, cfg.Allocs, func(ctx context.Context) error {
			seqs[i]++
			return wr(ctx, seqs[i])
		}); err != nil {
			return fmt.Errorf("allocations: %s: %w", s.name, err)
		}
	}
	st, err := w.delta(ctx)
	if err != nil {
		return err
	}
	res.write = all
	res.writeStats = st
	return nil
}

// sectionAsync measures read-after-write with synchronous_commit=off
// (section 5): the commit returns before its WAL is flushed, so it reaches
// the replica only after the WAL writer's next flush.
func sectionAsync(ctx context.Context, e *env, cfg config, res *results, log io.Writer) error {
	const async = "synchronous_commit=off"
	pw, err := e.pgwait(2, async)
	if err != nil {
		return err
	}
	prim, err := e.primary(2, async)
	if err != nil {
		return err
	}
	repl, err := e.replica(2)
	if err != nil {
		return err
	}
	var setting string
	if err := pw.QueryRowContext(pgwait.OnPrimary(ctx), "SELECT current_setting('synchronous_commit')").Scan(&setting); err != nil {
		return err
	}
	if setting != "off" {
		return fmt.Errorf("synchronous_commit is %q on pgwait's primary connection, want off", setting)
	}
	ids, err := e.rows(2)
	if err != nil {
		return err
	}
	sPgwait := newSeries("pgwait", true)
	sNaive := newSeries("naive replica read", false)
	vs := []variant{
		writeThenRead(sPgwait, dbWrite(pw, ids[0]), dbRead(pw, ids[0])),
		writeThenRead(sNaive, dbWrite(prim, ids[1]), dbRead(repl, ids[1])),
	}
	w, err := watchStats(ctx, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "5. read-after-write with synchronous_commit=off: %d iterations of %d variants, interleaved\n", cfg.Async, len(vs))
	if err := interleave(ctx, log, "synchronous_commit=off", cfg.Async, max(1, cfg.Batch/2), 5, vs); err != nil {
		return err
	}
	st, err := w.delta(ctx)
	if err != nil {
		return err
	}
	res.async = []*series{sPgwait, sNaive}
	res.asyncStats = st
	return nil
}
