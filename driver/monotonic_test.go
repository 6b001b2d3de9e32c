package driver_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// TestMonotonicReadsAcrossReplicas: a read served by a replica that had
// replayed more than pgwait knew of it (no probe since) must not be
// followed, on another pooled connection, by a read on a replica that had
// not: the second waits for what the first really saw (here it cannot, as
// replay is paused there, and falls back to the primary). Without the
// replay position read in each replica read's round trip, the second read
// needed no wait and went back in time. In every exec mode, each of which
// sends the replay query its own way.
func TestMonotonicReadsAcrossReplicas(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	for _, mode := range execModes {
		t.Run(mode, func(t *testing.T) { monotonicAcrossReplicas(t, c, mode) })
	}
}

func monotonicAcrossReplicas(t *testing.T, c *pgtest.Cluster, mode string) {
	ctx := ctxT(t)
	var mu sync.Mutex
	var last pgwait.Event
	// Probes every 2 s: one landing between the write and the first read
	// below (a few ms) would tell pgwait of replica 0's position, and the
	// test would pass without the replay position it is about.
	cfg, err := pgwait.ParseConfig(dsnFor(t, c, "pgwait_health_interval=2s", "pgwait_wait_timeout=300ms", "pgwait_balance=round_robin", "default_query_exec_mode="+mode))
	require.NoError(t, err)
	cfg.Tracer = pgwait.TracerFunc(func(e pgwait.Event) {
		mu.Lock()
		last = e
		mu.Unlock()
	})
	db := openConfig(t, cfg)
	tbl := table(t, db)
	require.Eventually(t, func() bool {
		reps, err := pgwaitdriver.ReplicasOf(ctx, db)
		require.NoError(t, err)
		for _, r := range reps {
			if r.State != pgwait.ReplicaInRotation {
				return false
			}
		}
		return len(reps) == 2
	}, 20*time.Second, 50*time.Millisecond, "both replicas in rotation")

	// Two pooled connections, each settled on its own replica.
	conns := map[string]*sql.Conn{}
	for range 10 {
		if len(conns) == 2 {
			break
		}
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		var one int
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT 1").Scan(&one))
		mu.Lock()
		e := last
		mu.Unlock()
		if e.Server == pgwait.ServerReplica && conns[e.Addr] == nil {
			conns[e.Addr] = conn
		}
	}
	require.Len(t, conns, 2, "two connections on two replicas")
	ahead, behind := hostPort(t, c.ReplicaDSN(0)), hostPort(t, c.ReplicaDSN(1))

	// Replica 1 stops replaying; a write pgwait does not see (another
	// process's) reaches replica 0.
	require.NoError(t, c.PauseReplay(ctx, 1))
	defer func() { require.NoError(t, c.ResumeReplay(context.Background(), 1)) }()
	primary, err := pgx.Connect(ctx, c.PrimaryDSN())
	require.NoError(t, err)
	defer primary.Close(ctx)
	var at string
	require.NoError(t, primary.QueryRow(ctx, "INSERT INTO "+tbl+" (v) VALUES ('elsewhere') RETURNING pg_current_wal_insert_lsn()::text").Scan(&at))
	require.NoError(t, c.WaitReplayed(ctx, 0, at))

	count := func(conn *sql.Conn) (int, pgwait.Event) {
		var n int
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 'elsewhere'").Scan(&n))
		mu.Lock()
		defer mu.Unlock()
		return n, last
	}
	n, e := count(conns[ahead])
	require.Equal(t, ahead, e.Addr)
	require.Equal(t, 1, n, "replica 0 has the row")
	n, e = count(conns[behind])
	assert.Equal(t, 1, n, "a later read never sees less than an earlier one (read on %s, fallback %q)", e.Addr, e.Fallback)
	assert.NotZero(t, e.WaitedFor, "the read on the replica behind waited for what the earlier read saw")
}
