package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// port returns the port of the server that ran the statement.
func port(t testing.TB, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var p int
	require.NoError(t, q.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p))
	return p
}

func portOf(t testing.TB, dsn string) string {
	t.Helper()
	hp := hostPort(t, dsn)
	return hp[strings.LastIndexByte(hp, ':')+1:]
}

func TestLeastLagPrefersACaughtUpReplica(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_health_interval=20ms", "pgwait_wait_timeout=5s")
	tbl := table(t, db)
	require.NoError(t, c.PauseReplay(ctx, 0))
	defer c.ResumeReplay(ctx, 0)

	_, err := db.Exec("INSERT INTO " + tbl + " (v) VALUES ('ll')")
	require.NoError(t, err)
	// Let the probes learn that replica 1 replayed the write and replica 0
	// did not: a read then needs no wait.
	require.Eventually(t, func() bool {
		before := stats(t, db)
		var p string
		err := db.QueryRowContext(ctx, "SELECT inet_server_port()::text").Scan(&p)
		after := stats(t, db)
		return err == nil && p == portOf(t, c.ReplicaDSN(1)) && after.Waits == before.Waits
	}, 10*time.Second, 20*time.Millisecond)
	before := stats(t, db)
	for range 20 {
		var n int
		var p string
		require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*), inet_server_port()::text FROM "+tbl+" WHERE v = 'll'").Scan(&n, &p))
		assert.Equal(t, 1, n)
		assert.Equal(t, portOf(t, c.ReplicaDSN(1)), p, "the caught-up replica serves the read")
	}
	after := stats(t, db)
	assert.Equal(t, before.WaitTimeouts, after.WaitTimeouts, "no read waited on the paused replica")
	assert.Equal(t, before.Waits, after.Waits, "no read needed a wait")
	assert.Equal(t, before.ReplicaReads+20, after.ReplicaReads)
}

func TestRoundRobinSpreadsConnections(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_balance=round_robin")
	seen := map[int]int{}
	var conns []*sql.Conn
	for range 6 {
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		conns = append(conns, conn)
		p := port(t, ctx, conn)
		seen[p]++
		assert.Equal(t, p, port(t, ctx, conn), "a connection keeps its replica")
	}
	for _, conn := range conns {
		conn.Close()
	}
	assert.Len(t, seen, 2, "both replicas serve connections: %v", seen)
}

func TestReplicaKilledAndRestarted(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := open(t, c, "pgwait_health_interval=50ms")
	tbl := table(t, db)
	eventuallyOnReplica(t, ctx, db)

	require.NoError(t, c.KillReplica(ctx, 0))
	readYourWrites(t, db, tbl, "k", 50) // reads keep working without the replica
	st := stats(t, db)
	assert.GreaterOrEqual(t, st.Ejections, uint64(1))
	assert.GreaterOrEqual(t, st.PrimaryReads, uint64(49))

	require.NoError(t, c.StartReplica(ctx, 0))
	eventuallyOnReplica(t, ctx, db)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+tbl).Scan(&n))
	assert.Equal(t, 50, n, "back on the replica, it sees every write")
}

func TestFailover(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := ctxT(t)
	// The primary DSN names every node; target_session_attrs finds the one
	// that takes writes, before and after the failover.
	hosts := []string{hostPort(t, c.PrimaryDSN()), hostPort(t, c.ReplicaDSN(0)), hostPort(t, c.ReplicaDSN(1))}
	var ports []string
	for _, hp := range hosts {
		ports = append(ports, hp[strings.LastIndexByte(hp, ':')+1:])
	}
	dsn := fmt.Sprintf("host=127.0.0.1,127.0.0.1,127.0.0.1 port=%s user=postgres dbname=postgres sslmode=disable target_session_attrs=read-write connect_timeout=5 pgwait_replicas=%s,%s pgwait_health_interval=50ms",
		strings.Join(ports, ","), hosts[1], hosts[2])
	db, err := sql.Open("pgwait", dsn)
	require.NoError(t, err)
	defer db.Close()
	tbl := table(t, db)
	tok := new(pgwait.Token)
	_, err = db.ExecContext(pgwait.WithToken(ctx, tok), "INSERT INTO "+tbl+" (v) VALUES ('before')")
	require.NoError(t, err)
	_, oldTimeline := tok.Position()
	require.EqualValues(t, 1, oldTimeline, "the token knows the primary's timeline")

	require.NoError(t, c.PromoteReplica(ctx, 0))

	// Pooled connections to the old primary fail once; database/sql then
	// opens new ones, which find the new primary.
	require.Eventually(t, func() bool {
		_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('after')")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond)
	var n int
	require.NoError(t, db.QueryRowContext(pgwait.WithToken(ctx, tok), "SELECT count(*) FROM "+tbl+" WHERE v IN ('before', 'after')").Scan(&n))
	assert.Equal(t, 2, n, "reads see writes from before and after the failover")
	st := stats(t, db)
	assert.EqualValues(t, 1, st.Failovers, "the new timeline was noticed")

	tok2 := new(pgwait.Token)
	_, err = db.ExecContext(pgwait.WithToken(ctx, tok2), "INSERT INTO "+tbl+" (v) VALUES ('after2')")
	require.NoError(t, err)
	_, newTimeline := tok2.Position()
	assert.EqualValues(t, 2, newTimeline)

	// The promoted node is not a replica any more; the other replica follows
	// the new primary and serves reads again.
	require.Eventually(t, func() bool {
		var p string
		err := db.QueryRowContext(ctx, "SELECT inet_server_port()::text WHERE pg_is_in_recovery()").Scan(&p)
		return err == nil && p == ports[2]
	}, 20*time.Second, 50*time.Millisecond)
}

func TestTracer(t *testing.T) {
	ctx := ctxT(t)
	var mu sync.Mutex
	var events []pgwait.Event
	cfg, err := pgwait.ParseConfig(dsnFor(t, shared(t)))
	require.NoError(t, err)
	cfg.Tracer = pgwait.TracerFunc(func(e pgwait.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	db := openConfig(t, cfg)
	tbl := table(t, db)
	mu.Lock()
	events = nil
	mu.Unlock()
	_, err = db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('traced')")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'traced'").Scan(&n))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 2)
	w, r := events[0], events[1]
	assert.True(t, w.Write)
	assert.Equal(t, pgwait.ServerPrimary, w.Server)
	assert.NotZero(t, w.Committed)
	assert.Equal(t, pgwait.ServerReplica, r.Server)
	assert.Equal(t, hostPort(t, shared(t).ReplicaDSN(0)), r.Addr)
	assert.GreaterOrEqual(t, r.WaitedFor, w.Committed, "the read waited for the write")
	assert.Equal(t, "success", r.WaitStatus)
	assert.NoError(t, r.Err)
	st := stats(t, db)
	var inHistogram uint64
	for _, b := range st.WaitHistogram {
		inHistogram += b.Count
	}
	assert.Equal(t, st.Waits, inHistogram, "every wait is in the histogram")
}

func TestReplicaChecksForDeadClients(t *testing.T) {
	db := open(t, shared(t))
	var interval string
	var inRecovery bool
	require.NoError(t, db.QueryRow("SELECT current_setting('client_connection_check_interval'), pg_is_in_recovery()").Scan(&interval, &inRecovery))
	assert.True(t, inRecovery)
	assert.Equal(t, "1s", interval, "a wait abandoned by a dead client is noticed within a second")
}

func TestNoReplicaPolicy(t *testing.T) {
	ctx := ctxT(t)
	db, err := sql.Open("pgwait", shared(t).PrimaryDSN()+" pgwait_replicas=127.0.0.1:1 pgwait_no_replica=error")
	require.NoError(t, err)
	defer db.Close()
	var one int
	err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	require.ErrorIs(t, err, pgwait.ErrNoReplica)
	_, err = db.ExecContext(ctx, "SELECT pg_sleep(0)")
	require.ErrorIs(t, err, pgwait.ErrNoReplica)
	require.NoError(t, db.QueryRowContext(pgwait.OnPrimary(ctx), "SELECT 1").Scan(&one), "forced primary reads still work")

	lenient, err := sql.Open("pgwait", shared(t).PrimaryDSN()+" pgwait_replicas=127.0.0.1:1")
	require.NoError(t, err)
	defer lenient.Close()
	require.NoError(t, lenient.QueryRowContext(ctx, "SELECT 1").Scan(&one), "by default the primary serves reads no replica can")
}
