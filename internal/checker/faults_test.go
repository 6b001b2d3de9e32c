package checker_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
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

// TestConsistencyUnderFaults runs clients through pgwait over two replicas
// while one's replay is paused for longer than the wait timeout, and it is
// killed, stopped and restarted; then it checks the history (reads move
// between the replicas as the faulty one leaves and rejoins the rotation:
// monotonic reads across replicas). The clients
// play every role of the workload: writes through functions, tokens handed
// as text to a second handle (another process's, at token scope), hostile
// tokens, tenant switches under row-level security.
func TestConsistencyUnderFaults(t *testing.T) {
	clients := envInt("PGWAIT_CHECKER_CLIENTS", len(checker.Roles))
	seconds := envInt("PGWAIT_CHECKER_SECONDS", 12)
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := context.Background()

	const waitTimeout = 200 * time.Millisecond
	db := openPgwait(t, c, "pgwait_wait_timeout=200ms pgwait_health_interval=100ms")
	db.SetMaxOpenConns(clients * 2)
	primary, err := sql.Open("pgx", c.PrimaryDSN())
	require.NoError(t, err)
	defer primary.Close()

	// The second handle shares nothing in memory with the first: another
	// process's, which only gets the writers' tokens as text.
	other := openPgwait(t, c, "pgwait_scope=token pgwait_wait_timeout=200ms pgwait_health_interval=100ms")
	other.SetMaxOpenConns(clients)

	w := &checker.Workload{DB: db, Other: other, Clients: clients}
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
	stOther, err := pgwaitdriver.StatsOf(ctx, other)
	require.NoError(t, err)
	t.Logf("%d clients, %ds: %v", clients, seconds, report)
	for name, st := range map[string]pgwait.Stats{"handle": st, "token-scope handle": stOther} {
		t.Logf("pgwait (%s): %d writes, %d replica reads, %d primary reads, %d waits, %d timeouts, %d fallbacks, %d ejections, %d replica errors, %d tokens reset, %d pinned conns",
			name, st.Writes, st.ReplicaReads, st.PrimaryReads, st.Waits, st.WaitTimeouts, st.Fallbacks, st.Ejections, st.ReplicaErrors, st.TokensReset, st.PinnedConns)
	}
	logMix(t, ops)
	for _, f := range faults {
		t.Logf("recovery after %-55s %v", f.name+":", checker.RecoveryTime(ops, f.ended).Round(time.Millisecond))
	}
	require.NotEmpty(t, faults, "the run was too short for any fault")
	require.True(t, report.OK(), "consistency violated: %v", report)
	require.Positive(t, report.ReplicaReads, "no read was served by the replica")
	require.Positive(t, report.TokenReads, "no read carried a token to the second handle")
	require.Positive(t, report.TenantReplicaReads, "no tenant read was served by the replica")
	require.Positive(t, st.TokensReset, "no hostile token was reset on the handle")
	require.Positive(t, stOther.TokensReset, "no hostile token was reset on the token-scope handle")
	for handle, honest := range honestReplicaReads(ops) {
		require.Positive(t, honest, "handle %d: no honest read was served by the replica", handle)
	}
	hostileTokensEjectNobody(t, ctx, w, db, other)
}

// logMix logs what each kind of operation did: how many succeeded, failed,
// and were served by the replica.
func logMix(t *testing.T, ops []checker.Op) {
	type count struct{ ok, failed, replica int }
	mix := map[string]*count{}
	var names []string
	for _, op := range ops {
		name := fmt.Sprintf("%-11s %s", [...]string{"write", "read", "tenant read"}[op.Kind], op.Via)
		if op.Kind == checker.Read && op.Handle != 0 {
			name += " (second handle)"
		}
		if mix[name] == nil {
			mix[name] = &count{}
			names = append(names, name)
		}
		c := mix[name]
		switch {
		case op.Err != nil:
			c.failed++
		case op.Replica:
			c.replica++
			c.ok++
		default:
			c.ok++
		}
	}
	sort.Strings(names)
	for _, name := range names {
		c := mix[name]
		share := 0.0
		if c.ok > 0 {
			share = 100 * float64(c.replica) / float64(c.ok)
		}
		t.Logf("  %-50s %6d ok %4d failed %6d on the replica (%.0f%%)", name, c.ok, c.failed, c.replica, share)
	}
}

// honestReplicaReads counts, per handle, the reads without a hostile token
// that the replica served.
func honestReplicaReads(ops []checker.Op) map[int]int {
	n := map[int]int{0: 0, 1: 0}
	for _, op := range ops {
		if op.Kind == checker.Read && op.Err == nil && op.Replica && op.Via != string(checker.Hostile) {
			n[op.Handle]++
		}
	}
	return n
}

// hostileTokensEjectNobody checks, once the faults are over and the replica
// serves reads again, that hostile tokens sent between honest reads leave
// the replica in rotation: every honest read, on both handles, is still
// served by it, no wait times out and no replica is ejected.
func hostileTokensEjectNobody(t *testing.T, ctx context.Context, w *checker.Workload, db, other *sql.DB) {
	t.Helper()
	onReplica := func(db *sql.DB, tok *pgwait.Token) bool {
		var inRecovery bool
		require.NoError(t, db.QueryRowContext(pgwait.WithToken(ctx, tok), "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		return inRecovery
	}
	honest := new(pgwait.Token)
	for _, h := range []*sql.DB{db, other} {
		require.Eventually(t, func() bool { return onReplica(h, honest) }, 20*time.Second, 20*time.Millisecond, "the replica serves reads again after the faults")
	}
	before := [2]pgwait.Stats{stats(t, db), stats(t, other)}
	texts := []string{"FFFFFFFF/FFFFFFFF", "FFFFFFFF/FFFFFFFF@1", "0/10@9", "7FFFFFFF/0@1", "1234/5678", "0/10@4294967295"}
	for i := range 60 {
		h := []*sql.DB{db, other}[i%2]
		tok, err := pgwait.ParseToken(texts[i%len(texts)])
		require.NoError(t, err)
		onReplica(h, tok)
		require.True(t, onReplica(h, honest), "honest read %d after a hostile token (%s) left the replica", i, texts[i%len(texts)])
	}
	after := [2]pgwait.Stats{stats(t, db), stats(t, other)}
	for i := range after {
		require.Equal(t, before[i].Ejections, after[i].Ejections, "handle %d: hostile tokens ejected the replica", i)
		require.Equal(t, before[i].WaitTimeouts, after[i].WaitTimeouts, "handle %d: hostile tokens made waits time out", i)
		require.Greater(t, after[i].TokensReset, before[i].TokensReset, "handle %d", i)
	}
}

func stats(t *testing.T, db *sql.DB) pgwait.Stats {
	t.Helper()
	st, err := pgwaitdriver.StatsOf(context.Background(), db)
	require.NoError(t, err)
	return st
}

func openPgwait(t testing.TB, c *pgtest.Cluster, settings string) *sql.DB {
	t.Helper()
	var replicas []string
	for i := range c.Replicas() {
		rc, err := pgx.ParseConfig(c.ReplicaDSN(i))
		require.NoError(t, err)
		replicas = append(replicas, net.JoinHostPort(rc.Host, strconv.Itoa(int(rc.Port))))
	}
	dsn := fmt.Sprintf("%s pgwait_replicas=%s %s", c.PrimaryDSN(), strings.Join(replicas, ","), settings)
	db, err := sql.Open("pgwait", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConsistencyThroughFailover runs clients through pgwait while replica 0
// is promoted to primary (the old primary shut down, the other replica
// following the new one). The primary DSN names every node with
// target_session_attrs=read-write. Clients play every role of the
// workload, with a second handle at token scope. Operations may fail while
// there is no primary; none may be stale, go back in time, be lost, or see
// another tenant's rows.
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
	other, err := sql.Open("pgwait", dsn+" pgwait_scope=token")
	require.NoError(t, err)
	defer other.Close()
	other.SetMaxOpenConns(8)

	w := &checker.Workload{DB: db, Other: other, Clients: len(checker.Roles), Timeout: 5 * time.Second}
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
	t.Logf("pgwait: %d failovers, %d waits, %d fallbacks, %d ejections, %d tokens reset", st.Failovers, st.Waits, st.Fallbacks, st.Ejections, st.TokensReset)
	logMix(t, ops)
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
	require.Empty(t, report.Leaks, "tenant leaks: %v", report)
	require.EqualValues(t, 1, st.Failovers, "the new primary's timeline was noticed")
	require.Positive(t, report.Writes)
	require.GreaterOrEqual(t, checker.RecoveryTime(ops, promoted), time.Duration(0), "no replica served reads after the failover")
}
