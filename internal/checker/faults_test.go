package checker_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/checker"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// envInt reads a size from the environment, for the larger documented run:
//
//	PGWAIT_CHECKER_CLIENTS=16 PGWAIT_CHECKER_SECONDS=60 go test -run TestConsistencyUnderFaults -v ./internal/checker/
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// fault is one injected fault: what it did and when it ended (replay
// resumed, replica started), so that recovery can be timed.
type fault struct {
	name  string
	ended time.Time
}

// TestConsistencyUnderFaults runs clients through pgwait while a replica's
// replay is paused for longer than the wait timeout, and the replica is
// killed, stopped and restarted; then it checks the history.
func TestConsistencyUnderFaults(t *testing.T) {
	clients := envInt("PGWAIT_CHECKER_CLIENTS", 8)
	seconds := envInt("PGWAIT_CHECKER_SECONDS", 12)
	c := pgtest.New(t, pgtest.Options{})
	ctx := context.Background()

	const waitTimeout = 200 * time.Millisecond
	db := openPgwait(t, c, "pgwait_wait_timeout=200ms pgwait_health_interval=100ms")
	db.SetMaxOpenConns(clients * 2)
	primary, err := sql.Open("pgx", c.PrimaryDSN())
	require.NoError(t, err)
	defer primary.Close()

	w := &checker.Workload{DB: db, Clients: clients}
	require.NoError(t, w.Setup(ctx))

	runCtx, stop := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
	defer stop()
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()

	// The fault schedule repeats until the run ends: each step is spaced so
	// that the replica has time to come back in between.
	var faults []fault
	step := func(d time.Duration) bool {
		select {
		case <-runCtx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, time.Duration(seconds+60)*time.Second)
	defer fcancel()
	for step(time.Second) {
		require.NoError(t, c.PauseReplay(fctx, 0))
		step(3 * waitTimeout)
		require.NoError(t, c.ResumeReplay(fctx, 0))
		faults = append(faults, fault{"replay paused 600ms (3x the wait timeout)", time.Now()})
		if !step(time.Second) {
			break
		}
		require.NoError(t, c.KillReplica(fctx, 0))
		step(500 * time.Millisecond)
		require.NoError(t, c.StartReplica(fctx, 0))
		faults = append(faults, fault{"replica killed (SIGKILL), restarted 500ms later", time.Now()})
		if !step(time.Second) {
			break
		}
		require.NoError(t, c.StopReplica(fctx, 0))
		step(500 * time.Millisecond)
		require.NoError(t, c.StartReplica(fctx, 0))
		faults = append(faults, fault{"replica stopped (fast shutdown), restarted 500ms later", time.Now()})
	}
	<-done

	final, err := w.Final(ctx, primary)
	require.NoError(t, err)
	ops := w.History.Ops()
	report := checker.Check(ops, final)
	st, err := pgwaitdriver.StatsOf(ctx, db)
	require.NoError(t, err)
	t.Logf("%d clients, %ds: %v", clients, seconds, report)
	t.Logf("pgwait: %d waits, %d timeouts, %d fallbacks, %d ejections, %d replica errors", st.Waits, st.WaitTimeouts, st.Fallbacks, st.Ejections, st.ReplicaErrors)
	for _, f := range faults {
		t.Logf("recovery after %-55s %v", f.name+":", checker.RecoveryTime(ops, f.ended).Round(time.Millisecond))
	}
	require.NotEmpty(t, faults, "the run was too short for any fault")
	require.True(t, report.OK(), "consistency violated: %v", report)
	require.Positive(t, report.ReplicaReads, "no read was served by the replica")
}

func openPgwait(t testing.TB, c *pgtest.Cluster, settings string) *sql.DB {
	t.Helper()
	rc, err := pgx.ParseConfig(c.ReplicaDSN(0))
	require.NoError(t, err)
	dsn := fmt.Sprintf("%s pgwait_replicas=%s %s", c.PrimaryDSN(), net.JoinHostPort(rc.Host, strconv.Itoa(int(rc.Port))), settings)
	db, err := sql.Open("pgwait", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConsistencyThroughFailover runs clients through pgwait while replica 0
// is promoted to primary (the old primary shut down, the other replica
// following the new one). The primary DSN names every node with
// target_session_attrs=read-write. Operations may fail while there is no
// primary; none may be stale, go back in time, or be lost.
func TestConsistencyThroughFailover(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := context.Background()
	var ports, replicas []string
	for _, dsn := range []string{c.PrimaryDSN(), c.ReplicaDSN(0), c.ReplicaDSN(1)} {
		cfg, err := pgx.ParseConfig(dsn)
		require.NoError(t, err)
		ports = append(ports, strconv.Itoa(int(cfg.Port)))
	}
	replicas = []string{"127.0.0.1:" + ports[1], "127.0.0.1:" + ports[2]}
	dsn := fmt.Sprintf("host=127.0.0.1,127.0.0.1,127.0.0.1 port=%s,%s,%s user=postgres dbname=postgres sslmode=disable target_session_attrs=read-write connect_timeout=5 pgwait_replicas=%s,%s pgwait_wait_timeout=500ms pgwait_health_interval=100ms",
		ports[0], ports[1], ports[2], replicas[0], replicas[1])
	db, err := sql.Open("pgwait", dsn)
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(16)

	w := &checker.Workload{DB: db, Clients: 8, Timeout: 5 * time.Second}
	require.NoError(t, w.Setup(ctx))
	runCtx, stop := context.WithTimeout(ctx, 8*time.Second)
	defer stop()
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()

	time.Sleep(2 * time.Second)
	failover := time.Now()
	require.NoError(t, c.PromoteReplica(ctx, 0))
	promoted := time.Now()
	<-done

	primary, err := sql.Open("pgx", c.PrimaryDSN())
	require.NoError(t, err)
	defer primary.Close()
	final, err := w.Final(ctx, primary)
	require.NoError(t, err)
	ops := w.History.Ops()
	report := checker.Check(ops, final)
	st, err := pgwaitdriver.StatsOf(ctx, db)
	require.NoError(t, err)
	t.Logf("failover took %v: %v", promoted.Sub(failover).Round(time.Millisecond), report)
	t.Logf("pgwait: %d failovers, %d waits, %d fallbacks, %d ejections", st.Failovers, st.Waits, st.Fallbacks, st.Ejections)
	t.Logf("recovery after the failover: %v", checker.RecoveryTime(ops, promoted).Round(time.Millisecond))
	var lastFailure time.Time
	for _, op := range ops {
		if op.Err != nil && op.End.After(lastFailure) {
			lastFailure = op.End
		}
	}
	if !lastFailure.IsZero() {
		t.Logf("operations failed until %v after the promotion finished", lastFailure.Sub(promoted).Round(time.Millisecond))
	}
	require.Empty(t, report.Stale, "stale reads: %v", report)
	require.Empty(t, report.NonMonotonic, "non-monotonic reads: %v", report)
	require.Empty(t, report.Lost, "lost writes: %v", report)
	require.EqualValues(t, 1, st.Failovers, "the new primary's timeline was noticed")
	require.Positive(t, report.Writes)
	require.GreaterOrEqual(t, checker.RecoveryTime(ops, promoted), time.Duration(0), "no replica served reads after the failover")
}
