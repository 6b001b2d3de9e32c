package driver_test

// Fault containment: a sick server costs a bounded time and never takes the
// healthy servers' work down with it. Bounds asserted here are generous
// multiples of the configured timeouts.

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// faultRun is what clients saw while a fault was injected.
type faultRun struct {
	mu                      sync.Mutex
	reads, writes           []time.Duration
	readErrs, writeErrs     []error
	stale                   int
	readsOnReplica, allRead atomic.Int64
}

func (f *faultRun) add(read bool, d time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if read {
		f.reads = append(f.reads, d)
		if err != nil {
			f.readErrs = append(f.readErrs, err)
		}
		return
	}
	f.writes = append(f.writes, d)
	if err != nil {
		f.writeErrs = append(f.writeErrs, err)
	}
}

func worst(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*99/100]
}

func (f *faultRun) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("reads %d (failed %d, on replica %d, stale %d, worst %v, p99 %v); writes %d (failed %d, worst %v, p99 %v)",
		len(f.reads), len(f.readErrs), f.readsOnReplica.Load(), f.stale, worst(f.reads), p99(f.reads),
		len(f.writes), len(f.writeErrs), worst(f.writes), p99(f.writes))
}

// runClients runs clients that each insert a row (its value starting with
// label) and read it back (a stale read is one that misses it), for d, with
// ctxFor giving each operation's context.
func runClients(t *testing.T, db *sql.DB, tbl, label string, clients int, d time.Duration, ctxFor func() (context.Context, context.CancelFunc)) *faultRun {
	t.Helper()
	f := &faultRun{}
	var seq atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				v := fmt.Sprint(label, seq.Add(1))
				ctx, cancel := ctxFor()
				start := time.Now()
				_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", v)
				f.add(false, time.Since(start), err)
				cancel()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ctx, cancel = ctxFor()
				start = time.Now()
				var n int
				var inRecovery bool
				err = db.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = $1", v).Scan(&n, &inRecovery)
				f.add(true, time.Since(start), err)
				cancel()
				if err == nil {
					f.allRead.Add(1)
					if inRecovery {
						f.readsOnReplica.Add(1)
					}
					if n != 1 {
						f.mu.Lock()
						f.stale++
						f.mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	return f
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

func noDeadline() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// TestSickReplicaCostsABoundedTime freezes a replica (SIGSTOP: connections
// stay open, nothing answers) or cuts it off the network (packets to and
// from its port dropped on loopback, no RST: where nftables cannot be used
// the test says so and freezes it instead), with and without a context
// deadline on each operation, while clients write and read back.
func TestSickReplicaCostsABoundedTime(t *testing.T) {
	const (
		waitTimeout    = 300 * time.Millisecond
		replicaTimeout = 500 * time.Millisecond
	)
	for _, fault := range []string{"frozen", "blackholed"} {
		for _, deadline := range []time.Duration{0, 5 * time.Second} {
			t.Run(fmt.Sprintf("%s, deadline %v", fault, deadline), func(t *testing.T) {
				c := pgtest.New(t, pgtest.Options{})
				ctx := ctxT(t)
				goroutines := runtime.NumGoroutine()
				const app = "pgwait-sick-replica"
				db := open(t, c, "pgwait_wait_timeout=300ms", "pgwait_replica_timeout=500ms", "pgwait_health_interval=100ms", "application_name="+app)
				db.SetMaxOpenConns(16)
				tbl := table(t, db)
				eventuallyOnReplica(t, ctx, db)
				ctxFor := noDeadline
				if deadline > 0 {
					ctxFor = func() (context.Context, context.CancelFunc) {
						return context.WithTimeout(context.Background(), deadline)
					}
				}
				healthy := runClients(t, db, tbl, "healthy", 8, time.Second, ctxFor)
				t.Logf("healthy: %v", healthy)

				heal := injectSickness(t, c, fault)
				sickAt := time.Now()
				sick := runClients(t, db, tbl, "sick", 8, 3*time.Second, ctxFor)
				require.NoError(t, heal())
				t.Logf("%s: %v", fault, sick)

				bound := 3 * (waitTimeout + replicaTimeout)
				assert.Zero(t, len(sick.readErrs), "reads failed while the primary could serve them: %v", first(sick.readErrs))
				assert.Zero(t, len(sick.writeErrs), "writes failed: %v", first(sick.writeErrs))
				assert.Zero(t, sick.stale)
				assert.LessOrEqual(t, worst(sick.reads), bound, "a read took longer than 3x (wait timeout + replica timeout)")
				// Writes never touch the replica; their worst case is machine
				// noise (2 shared cores), bounded as generously as reads. Their
				// p99 beside the fault-free run's is in the log.
				assert.LessOrEqual(t, worst(sick.writes), bound, "writes were held up by the sick replica")
				st := stats(t, db)
				assert.Positive(t, st.Ejections)
				t.Logf("stats: replica timeouts %d, ejections %d, fallbacks %d", st.ReplicaTimeouts, st.Ejections, st.Fallbacks)

				// Healed, it comes back into rotation.
				eventuallyOnReplica(t, ctx, db)
				t.Logf("back in rotation %v after the fault began", time.Since(sickAt))

				// Nothing leaks: goroutines, or server connections.
				require.NoError(t, db.Close())
				require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+2 }, 10*time.Second, 50*time.Millisecond,
					"goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
				for _, dsn := range []string{c.PrimaryDSN(), c.ReplicaDSN(0)} {
					require.Eventually(t, func() bool { return serverConns(t, ctx, dsn, app) == 0 }, 30*time.Second, 100*time.Millisecond,
						"server connections left behind")
				}
			})
		}
	}
}

// serverConns counts the server's client connections whose
// application_name starts with app (probes included).
func serverConns(t *testing.T, ctx context.Context, dsn, app string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1 || '%'", app).Scan(&n))
	return n
}

// injectSickness freezes or blackholes c's replica and returns what heals it.
func injectSickness(t *testing.T, c *pgtest.Cluster, fault string) func() error {
	t.Helper()
	if fault == "blackholed" {
		heal, err := c.BlackholeReplica(0)
		if err == nil {
			t.Cleanup(func() { heal() })
			return heal
		}
		require.ErrorIs(t, err, pgtest.ErrNoBlackhole)
		t.Logf("cannot drop packets here (%v): freezing the replica instead", err)
	}
	require.NoError(t, c.FreezeReplica(0))
	return func() error { return c.ThawReplica(0) }
}

// TestReplicaOutOfConnectionSlots fills a replica's connection slots: a
// refused connection (53300) sends the read elsewhere without ejecting the
// replica, whose pooled connections keep serving reads.
func TestReplicaOutOfConnectionSlots(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Settings: map[string]string{"max_connections": "12"}})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_health_interval=100ms")
	db.SetMaxOpenConns(16)
	eventuallyOnReplica(t, ctx, db)
	before := stats(t, db)

	conns := make([]*sql.Conn, 16)
	for i := range conns {
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		conns[i] = conn
	}
	var wg sync.WaitGroup
	var failed, onReplicaN atomic.Int64
	for _, conn := range conns {
		wg.Go(func() {
			var inRecovery bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
				failed.Add(1)
				t.Logf("read failed: %v", err)
			} else if inRecovery {
				onReplicaN.Add(1)
			}
		})
	}
	wg.Wait()
	for _, conn := range conns {
		conn.Close()
	}
	t.Logf("16 connections at once on a replica with 12 slots: %d reads on the replica, %d failed", onReplicaN.Load(), failed.Load())
	assert.Zero(t, failed.Load())
	assert.Positive(t, onReplicaN.Load())
	assert.Less(t, onReplicaN.Load(), int64(16), "the replica should have run out of slots")
	assert.Equal(t, before.Ejections, stats(t, db).Ejections, "a replica out of slots stays in rotation")
	replicaReads := 0
	for range 50 {
		if onReplica(t, ctx, db, "SELECT pg_is_in_recovery()") {
			replicaReads++
		}
	}
	assert.GreaterOrEqual(t, replicaReads, 45, "the replica's pooled connections keep serving reads")
}

func TestReadsSurviveThePrimary(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_health_interval=100ms", "pgwait_replica_timeout=500ms")
	db.SetMaxOpenConns(8)
	tbl := table(t, db)
	_, err := db.Exec("INSERT INTO " + tbl + " (v) VALUES ('before')")
	require.NoError(t, err)
	eventuallyOnReplica(t, ctx, db)

	require.NoError(t, c.KillPrimary(ctx))
	var failed, onReplica int
	var worstRead time.Duration
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for range 50 {
				start := time.Now()
				var n int
				var inRecovery bool
				err := db.QueryRowContext(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+tbl+" WHERE v = 'before'").Scan(&n, &inRecovery)
				mu.Lock()
				worstRead = max(worstRead, time.Since(start))
				if err != nil || n != 1 {
					failed++
				} else if inRecovery {
					onReplica++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("primary down: 400 reads, %d failed, %d on the replica, worst %v", failed, onReplica, worstRead)
	assert.Zero(t, failed, "reads failed while the replica was healthy")
	assert.Equal(t, 400, onReplica)

	start := time.Now()
	_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('during')")
	require.Error(t, err, "a write cannot succeed without the primary")
	assert.Less(t, time.Since(start), 5*time.Second, "a write fails fast while the primary is down")

	require.NoError(t, c.StartPrimary(ctx))
	require.Eventually(t, func() bool {
		_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('after')")
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "writes resume on the same *sql.DB once the primary is back")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'after'").Scan(&n))
	assert.Equal(t, 1, n)
}

// conflictCluster starts a cluster whose replica cancels queries that
// replay conflicts with at once, opens a pgwait handle over it with extra
// settings, fills a table with rows (insert: the values statement) that the
// replica has, and connects to the primary directly.
func conflictCluster(t *testing.T, insert string, extra ...string) (db *sql.DB, tbl string, primary *pgx.Conn) {
	c := pgtest.New(t, pgtest.Options{Settings: map[string]string{
		"max_standby_streaming_delay": "0",
		"hot_standby_feedback":        "off",
	}})
	ctx := ctxT(t)
	db = open(t, c, extra...)
	tbl = table(t, db)
	_, err := db.Exec("INSERT INTO " + tbl + " " + insert)
	require.NoError(t, err)
	eventuallyOnReplica(t, ctx, db)
	primary, err = pgx.Connect(ctx, c.PrimaryDSN())
	require.NoError(t, err)
	t.Cleanup(func() { primary.Close(context.Background()) })
	return db, tbl, primary
}

func TestRecoveryConflictsAreRetried(t *testing.T) {
	ctx := ctxT(t)
	db, tbl, primary := conflictCluster(t, "(v) SELECT g::text FROM generate_series(1, 200) g", "pgwait_health_interval=100ms")

	// The primary keeps rewriting the rows and vacuuming the old versions
	// away: replaying the cleanup cancels replica queries that still see them.
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
	var reads, failed int
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && stats(t, db).RecoveryConflicts < 5 {
		var sum int
		err := db.QueryRowContext(ctx, "SELECT sum(n) FROM "+tbl+", pg_sleep(0.02)").Scan(&sum)
		reads++
		if err != nil {
			failed++
			t.Logf("read failed: %v", err)
		}
	}
	close(done)
	churn.Wait()
	st := stats(t, db)
	t.Logf("%d reads, %d failed, %d recovery conflicts retried", reads, failed, st.RecoveryConflicts)
	assert.Zero(t, failed, "reads failed by recovery conflicts")
	assert.GreaterOrEqual(t, st.RecoveryConflicts, uint64(5), "the test caused too few conflicts to prove anything")
}

func TestReadOnlyWorkloadOpensNoPrimaryConnection(t *testing.T) {
	ctx := ctxT(t)
	const app = "pgwait-readonly-test"
	db, err := sql.Open("pgwait", dsnFor(t, shared(t))+" application_name="+app)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(8)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 25 {
				var one int
				if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	count := func(dsn string) int {
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n))
		return n
	}
	primaryConns, replicaConns := count(shared(t).PrimaryDSN()), count(shared(t).ReplicaDSN(0))
	t.Logf("read-only workload, 8 pooled connections: %d primary, %d replica server connections (probes aside)", primaryConns, replicaConns)
	assert.Zero(t, primaryConns, "a read-only workload dialed the primary")
	assert.Positive(t, replicaConns)
	assert.LessOrEqual(t, replicaConns, 8)
}

// TestReplicaSetChangesAtRunTime adds a replica to a live handle, then
// removes the first one, whose read in progress finishes.
func TestReplicaSetChangesAtRunTime(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := ctxT(t)
	first, second := hostPort(t, c.ReplicaDSN(0)), hostPort(t, c.ReplicaDSN(1))
	db, err := sql.Open("pgwait", c.PrimaryDSN()+" pgwait_replicas="+first+" pgwait_balance=round_robin pgwait_health_interval=50ms")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(0) // a new pgwait connection, and so a new pick, per statement
	connector, err := pgwaitdriver.ConnectorOf(ctx, db)
	require.NoError(t, err)
	servedBy := func() string {
		var p int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p))
		return fmt.Sprint(p)
	}
	require.Eventually(t, func() bool { return servedBy() == portOf(t, c.ReplicaDSN(0)) }, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, connector.AddReplica(second))
	require.ErrorContains(t, connector.AddReplica(second), "in the set already")
	require.Eventually(t, func() bool { return servedBy() == portOf(t, c.ReplicaDSN(1)) }, 10*time.Second, 20*time.Millisecond,
		"the added replica serves reads once probed")
	assert.Len(t, connector.Replicas(), 2)

	// A read in progress on the first replica when it is removed finishes.
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	var rows *sql.Rows
	require.Eventually(t, func() bool {
		var p int
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p))
		return fmt.Sprint(p) == portOf(t, c.ReplicaDSN(0))
	}, 10*time.Second, 10*time.Millisecond)
	rows, err = conn.QueryContext(ctx, "SELECT g FROM generate_series(1, 100000) g")
	require.NoError(t, err)
	require.NoError(t, connector.RemoveReplica(first))
	require.ErrorContains(t, connector.RemoveReplica(first), "no replica")
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, 100000, n, "the read on the removed replica was cut")
	require.NoError(t, conn.Close())

	for range 30 {
		assert.Equal(t, portOf(t, c.ReplicaDSN(1)), servedBy(), "a removed replica serves no new read")
	}
	st := connector.Replicas()
	require.Len(t, st, 1)
	assert.Equal(t, second, st[0].Addr)
}

// TestRecoveryConflictAfterTheRowIsRetried: a conflict that cancels a
// one-row read after its row was sent (here: the row comes from the first
// branch of an Append, the second sleeps and returns nothing, and the
// primary's ACCESS EXCLUSIVE lock, replayed meanwhile, cancels the
// statement) is retried like one raised before any row, instead of
// reaching the caller at Close.
func TestRecoveryConflictAfterTheRowIsRetried(t *testing.T) {
	ctx := ctxT(t)
	db, tbl, primary := conflictCluster(t, "(id, v) VALUES (1, 'row')", "pgwait_replica_timeout=20s")

	lock := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond) // the replica has sent the row and sleeps
		_, err := primary.Exec(ctx, "BEGIN; LOCK TABLE "+tbl+" IN ACCESS EXCLUSIVE MODE; COMMIT")
		lock <- err
	}()
	var v string
	err := db.QueryRowContext(ctx, "SELECT v FROM "+tbl+" WHERE id = 1 UNION ALL SELECT 'never' FROM pg_sleep(2) WHERE random() < 0").Scan(&v)
	require.NoError(t, <-lock)
	require.NoError(t, err, "the conflict after the row was sent is retried")
	assert.Equal(t, "row", v)
	assert.Equal(t, uint64(1), stats(t, db).RecoveryConflicts, "the read was cancelled once by recovery, and retried")
}
