package driver_test

// TestFaultTable re-measures the fault-containment issue's table the way it
// was measured: one primary and one or two replicas, 16 goroutines writing
// and reading back through one *sql.DB, default settings but
// pgwait_wait_timeout=1s (so the replica timeout is its default, 2 s, and
// the bound a sick replica may cost a read is 1 s + 2 s = 3 s). It logs one
// markdown row per fault (go test -v -run TestFaultTable ./driver/) and
// asserts the "done when": reads bounded (2x the bound here), 0
// failed reads while a server that can serve them is healthy, 0 stale, writes
// not slowed by replica faults, 0 primary connections for reads.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/internal/pgtest"
)

const (
	tableClients = 16
	tableBound   = 3 * time.Second // wait timeout 1 s + default replica timeout 2 s
	tableFault   = 4 * time.Second
)

// tableRow is one row of the table.
type tableRow struct{ fault, reads, writes, notes string }

func logTable(t *testing.T, rows []tableRow) {
	var b strings.Builder
	b.WriteString("\n| fault | reads | writes | notes |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.fault, r.reads, r.writes, r.notes)
	}
	t.Log(b.String())
}

func TestFaultTable(t *testing.T) {
	var rows []tableRow
	defer func() { logTable(t, rows) }()

	for _, sick := range []struct {
		fault    string
		deadline time.Duration
	}{{"frozen", 0}, {"blackholed", 0}, {"frozen", 5 * time.Second}} {
		c := pgtest.New(t, pgtest.Options{})
		db := open(t, c, "pgwait_wait_timeout=1s")
		db.SetMaxOpenConns(2 * tableClients)
		tbl := table(t, db)
		eventuallyOnReplica(t, ctxT(t), db)
		ctxFor := noDeadline
		if sick.deadline > 0 {
			ctxFor = func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), sick.deadline)
			}
		}
		healthy := runClients(t, db, tbl, "healthy", tableClients, 2*time.Second, ctxFor)
		heal := injectSickness(t, c, sick.fault)
		during := runClients(t, db, tbl, "sick", tableClients, tableFault, ctxFor)
		require.NoError(t, heal())
		name := fmt.Sprintf("replica %s, %s", sick.fault, map[bool]string{true: fmt.Sprintf("%v deadline", sick.deadline), false: "no deadline"}[sick.deadline > 0])
		rows = append(rows, tableRow{name,
			fmt.Sprintf("%d, %d failed, %d stale, worst %v", len(during.reads), len(during.readErrs), during.stale, worst(during.reads).Round(time.Millisecond)),
			fmt.Sprintf("%d failed, p99 %v (healthy %v), worst %v", len(during.writeErrs), p99(during.writes).Round(100*time.Microsecond), p99(healthy.writes).Round(100*time.Microsecond), worst(during.writes).Round(time.Millisecond)),
			"bound 3 s"})
		assert.Zero(t, len(during.readErrs), "%s: %v", name, first(during.readErrs))
		assert.Zero(t, len(during.writeErrs), "%s: %v", name, first(during.writeErrs))
		assert.Zero(t, during.stale, name)
		assert.LessOrEqual(t, worst(during.reads), 2*tableBound, name)
		assert.LessOrEqual(t, worst(during.writes), tableBound, "%s: writes held up", name)
	}

	t.Run("primary killed", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{})
		ctx := ctxT(t)
		db := open(t, c, "pgwait_wait_timeout=1s")
		tbl := table(t, db)
		runClients(t, db, tbl, "before", tableClients, time.Second, noDeadline)
		// The writes above may have been acknowledged just before the kill:
		// wait for the replica to have them all, as the run did
		// (its failed reads were reads that never needed the primary).
		eventuallyOnReplica(t, ctx, db)
		require.NoError(t, c.KillPrimary(ctx))
		var reads, failed, onReplica atomic.Int64
		var worstRead atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(3 * time.Second)
		for range tableClients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					start := time.Now()
					var n int
					var in bool
					err := db.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+tbl).Scan(&n, &in)
					d := int64(time.Since(start))
					for old := worstRead.Load(); d > old && !worstRead.CompareAndSwap(old, d); old = worstRead.Load() {
					}
					reads.Add(1)
					if err != nil {
						failed.Add(1)
					} else if in {
						onReplica.Add(1)
					}
				}
			})
		}
		wg.Wait()
		start := time.Now()
		_, werr := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('during')")
		writeFail := time.Since(start)
		require.NoError(t, c.StartPrimary(ctx))
		start = time.Now()
		require.Eventually(t, func() bool {
			_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('after')")
			return err == nil
		}, 20*time.Second, 20*time.Millisecond)
		rows = append(rows, tableRow{"primary killed (SIGKILL), 3 s",
			fmt.Sprintf("%d, %d failed, %d on the replica, worst %v", reads.Load(), failed.Load(), onReplica.Load(), time.Duration(worstRead.Load()).Round(time.Millisecond)),
			fmt.Sprintf("fail in %v (%v)", writeFail.Round(time.Millisecond), werr != nil),
			fmt.Sprintf("writes resume %v after the restart, same *sql.DB", time.Since(start).Round(time.Millisecond))})
		assert.Zero(t, failed.Load())
		assert.Error(t, werr)
	})

	t.Run("recovery conflicts", func(t *testing.T) {
		ctx := ctxT(t)
		db, tbl, primary := conflictCluster(t, "(v) SELECT g::text FROM generate_series(1, 200) g", "pgwait_wait_timeout=1s")
		done := make(chan struct{})
		var churn sync.WaitGroup
		churn.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				primary.Exec(ctx, "UPDATE "+tbl+" SET n = n + 1")
				primary.Exec(ctx, "VACUUM "+tbl)
			}
		})
		var reads, failed atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(5 * time.Second)
		for range tableClients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					var sum int
					reads.Add(1)
					if err := db.QueryRowContext(ctx, "SELECT sum(n) FROM "+tbl+", pg_sleep(0.02)").Scan(&sum); err != nil {
						failed.Add(1)
						t.Logf("read failed: %v", err)
					}
				}
			})
		}
		wg.Wait()
		close(done)
		churn.Wait()
		st := stats(t, db)
		rows = append(rows, tableRow{"hot-standby conflicts (max_standby_streaming_delay=0, vacuum), 5 s",
			fmt.Sprintf("%d, %d failed", reads.Load(), failed.Load()), "-",
			fmt.Sprintf("%d conflicts retried elsewhere", st.RecoveryConflicts)})
		assert.Zero(t, failed.Load(), "reads failed by recovery conflicts")
		assert.Positive(t, st.RecoveryConflicts)
	})

	t.Run("connections, 20 pooled, 2 replicas", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{Replicas: 2})
		ctx := ctxT(t)
		const app = "pgwait-fault-table"
		db, err := sql.Open("pgwait", dsnFor(t, c, "pgwait_wait_timeout=1s", "application_name="+app))
		require.NoError(t, err)
		defer db.Close()
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(20)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for range 50 {
					var one int
					assert.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
				}
			})
		}
		wg.Wait()
		p, r0, r1 := serverConns(t, ctx, c.PrimaryDSN(), app), serverConns(t, ctx, c.ReplicaDSN(0), app), serverConns(t, ctx, c.ReplicaDSN(1), app)
		rows = append(rows, tableRow{"20 pooled connections, 2 replicas, read-only",
			fmt.Sprintf("1000, server connections: primary %d, replicas %d + %d", p, r0, r1), "-",
			"health probes included (their application_name starts with the handle's)"})
		assert.LessOrEqual(t, p, 1, "a read-only workload opens no primary connection but the probe")
		assert.LessOrEqual(t, r0+r1, 20+2)
	})

	t.Run("replica at max_connections", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{Settings: map[string]string{"max_connections": "12"}})
		ctx := ctxT(t)
		db := open(t, c, "pgwait_wait_timeout=1s")
		db.SetMaxOpenConns(20)
		eventuallyOnReplica(t, ctx, db)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 20 {
			wg.Go(func() {
				for range 20 {
					if !func() bool {
						var in bool
						return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), pg_sleep(0.005)").Scan(&in, new(any)) == nil
					}() {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		onReplica := 0
		for range 100 {
			if onReplicaRead(ctx, db) {
				onReplica++
			}
		}
		rows = append(rows, tableRow{"replica at max_connections (12), 20 pooled connections",
			fmt.Sprintf("400 during, %d failed; then %d of 100 on the replica", failed.Load(), onReplica), "-",
			fmt.Sprintf("ejections %d", stats(t, db).Ejections)})
		assert.Zero(t, failed.Load())
		assert.GreaterOrEqual(t, onReplica, 90)
	})

	t.Run("replica frozen, then INSERT with a 3 s deadline", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{})
		ctx := ctxT(t)
		db := open(t, c, "pgwait_wait_timeout=1s")
		db.SetMaxOpenConns(1) // the INSERT reuses the connection that read from the replica
		tbl := table(t, db)
		eventuallyOnReplica(t, ctx, db)
		require.NoError(t, c.FreezeReplica(0))
		defer c.ThawReplica(0)
		time.Sleep(1100 * time.Millisecond) // past pgx stdlib's 1 s idle ping threshold
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := db.ExecContext(ictx, "INSERT INTO "+tbl+" (v) VALUES ('frozen')")
		took := time.Since(start)
		rows = append(rows, tableRow{"replica frozen, then a plain INSERT with a 3 s deadline", "-",
			fmt.Sprintf("error %v, in %v", err, took.Round(time.Millisecond)), "ResetSession pings no replica"})
		assert.NoError(t, err)
		assert.Less(t, took, time.Second)
	})

	t.Run("one of two replicas hung", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{Replicas: 2})
		ctx := ctxT(t)
		db := open(t, c, "pgwait_wait_timeout=1s")
		db.SetMaxOpenConns(2 * tableClients)
		tbl := table(t, db)
		eventuallyOnReplica(t, ctx, db)
		require.NoError(t, c.FreezeReplica(0))
		during := runClients(t, db, tbl, "hung", tableClients, tableFault, noDeadline)
		require.NoError(t, c.ThawReplica(0))
		rows = append(rows, tableRow{"one of two replicas frozen, 4 s",
			fmt.Sprintf("%d, %d failed, %d on the other replica, %d stale, worst %v", len(during.reads), len(during.readErrs), during.readsOnReplica.Load(), during.stale, worst(during.reads).Round(time.Millisecond)),
			fmt.Sprintf("%d failed, worst %v", len(during.writeErrs), worst(during.writes).Round(time.Millisecond)),
			"probes run a loop per replica"})
		assert.Zero(t, len(during.readErrs))
		assert.Zero(t, during.stale)
		assert.Positive(t, during.readsOnReplica.Load(), "the healthy replica keeps serving")
		assert.LessOrEqual(t, worst(during.reads), 2*tableBound)
	})
}

// onReplicaRead reports whether a read ran on a replica.
func onReplicaRead(ctx context.Context, db *sql.DB) bool {
	var in bool
	return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&in) == nil && in
}
