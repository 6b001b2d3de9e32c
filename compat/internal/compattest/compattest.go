// Package compattest holds what the compat tests share: one PostgreSQL 19
// primary + replica per test package, pgwait DSNs over it, and checks that
// the replica really lags, that a read ran on it, and the like.
//
// Each test package starts its cluster in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(compattest.Main(m)) }
//
// The replicas of that cluster apply each commit ApplyDelay after the primary
// made it (recovery_min_apply_delay), so that a read sent to a replica right
// after a write would miss it unless pgwait made the replica wait: zero stale
// reads in a compat test means pgwait did its job, not that replication
// happened to be quick.
package compattest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// ApplyDelay is how long the replicas hold back each commit before replaying
// it.
const ApplyDelay = 10 * time.Millisecond

// Loops is how many write-then-read rounds the read-your-writes loops run.
const Loops = 200

var cluster *pgtest.Cluster

// Main starts the package's shared cluster, runs the tests and stops it. When
// PostgreSQL 19 cannot be had, the tests skip, or fail when PGWAIT_REQUIRE_PG
// or CI is set (see pgtest.Required).
func Main(m *testing.M) int {
	c, stop := pgtest.Shared(m, pgtest.Options{Settings: map[string]string{
		"recovery_min_apply_delay": fmt.Sprintf("%dms", ApplyDelay.Milliseconds()),
	}})
	cluster = c
	code := m.Run()
	stop()
	return code
}

// Cluster returns the package's shared cluster, skipping t when there is none.
func Cluster(t testing.TB) *pgtest.Cluster {
	t.Helper()
	return pgtest.Need(t, cluster)
}

// DSN returns a pgwait DSN over the shared cluster's primary and replicas,
// with extra pgwait settings appended ("pgwait_wait_timeout=2s").
func DSN(t testing.TB, extra ...string) string {
	t.Helper()
	c := Cluster(t)
	var reps []string
	for i := range c.Replicas() {
		cfg, err := pgx.ParseConfig(c.ReplicaDSN(i))
		require.NoError(t, err)
		reps = append(reps, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
	}
	// A generous wait timeout: the machine may be busy, and a timed-out wait
	// would read from the primary, which the tests count as a failure to
	// read from the replica.
	dsn := c.PrimaryDSN() + " pgwait_wait_timeout=5s pgwait_replicas=" + strings.Join(reps, ",")
	for _, e := range extra {
		dsn += " " + e
	}
	return dsn
}

// Open opens a *sql.DB with driverName over DSN(t) and closes it when t ends.
func Open(t testing.TB, driverName string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(Ctx(t)))
	return db
}

// Connector returns a pgwait connector over DSN(t), for sql.OpenDB or a
// wrapper's OpenDB, and for its Stats.
func Connector(t testing.TB) *pgwaitdriver.Connector {
	t.Helper()
	cfg, err := pgwait.ParseConfig(DSN(t))
	require.NoError(t, err)
	c, err := pgwaitdriver.NewConnector(cfg)
	require.NoError(t, err)
	return c
}

// Stats returns the pgwait statistics of db, opened with the pgwait driver.
func Stats(t testing.TB, db *sql.DB) pgwait.Stats {
	t.Helper()
	st, err := pgwaitdriver.StatsOf(Ctx(t), db)
	require.NoError(t, err)
	return st
}

// Delta is what a handle did between two Stats snapshots.
type Delta struct {
	Writes, ReplicaReads, PrimaryReads, Waits, Fallbacks, WaitTimeouts uint64
}

// Sub returns what happened between before and after.
func Sub(after, before pgwait.Stats) Delta {
	return Delta{
		Writes:       after.Writes - before.Writes,
		ReplicaReads: after.ReplicaReads - before.ReplicaReads,
		PrimaryReads: after.PrimaryReads - before.PrimaryReads,
		Waits:        after.Waits - before.Waits,
		Fallbacks:    after.Fallbacks - before.Fallbacks,
		WaitTimeouts: after.WaitTimeouts - before.WaitTimeouts,
	}
}

// RequireReplicaRYW checks the statistics of a read-your-writes loop of n
// rounds, each one write then reads: every read ran on the replica (none on
// the primary, no fallback, no timeout), and the replica was made to wait.
func RequireReplicaRYW(t testing.TB, d Delta, n int) {
	t.Helper()
	t.Logf("pgwait stats over %d rounds: %+v", n, d)
	require.GreaterOrEqual(t, d.Writes, uint64(n), "writes captured on the primary")
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(n), "reads served by the replica")
	require.Zero(t, d.PrimaryReads, "reads served by the primary")
	require.Zero(t, d.Fallbacks, "reads that fell back to the primary")
	require.Zero(t, d.WaitTimeouts, "waits that timed out")
	// Each write is followed by a read that needs it: with the replica
	// ApplyDelay behind, most of these reads must have waited.
	require.GreaterOrEqual(t, d.Waits, uint64(n/2), "reads that waited for the replica")
}

// Ctx returns a context for t, cancelled when t ends, bounded to a minute.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var (
	seq atomic.Int64
	run = strconv.FormatInt(time.Now().UnixNano()%(36*36*36*36*36*36), 36)
)

// Name returns a name starting with prefix that no other call, in this test
// binary or an earlier run against the same cluster, returned: for tables
// and for values of unique columns.
func Name(prefix string) string {
	return fmt.Sprintf("%s_%s_%d", prefix, run, seq.Add(1))
}

// RequireReplicaLags shows that the shared cluster's replica does lag: a row
// inserted on the primary and looked for on the replica at once, without
// pgwait, is not there yet. The compat tests' zero stale reads are then
// pgwait's doing.
func RequireReplicaLags(t testing.TB) {
	t.Helper()
	c := Cluster(t)
	ctx := Ctx(t)
	p, err := pgx.Connect(ctx, c.PrimaryDSN())
	require.NoError(t, err)
	defer p.Close(context.Background())
	r, err := pgx.Connect(ctx, c.ReplicaDSN(0))
	require.NoError(t, err)
	defer r.Close(context.Background())

	table := Name("lag")
	_, err = p.Exec(ctx, "CREATE TABLE "+table+" (id int PRIMARY KEY)")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var ok bool
		err := r.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok)
		return err == nil && ok
	}, 10*time.Second, 5*time.Millisecond, "the replica never got table %s", table)

	// One round could be unlucky on a busy machine (a stall longer than
	// ApplyDelay between the insert and the read); one stale read in five
	// rounds proves the point.
	stale := 0
	for i := range 5 {
		_, err := p.Exec(ctx, "INSERT INTO "+table+" VALUES ($1)", i)
		require.NoError(t, err)
		var n int
		require.NoError(t, r.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = $1", i).Scan(&n))
		if n == 0 {
			stale++
		}
	}
	t.Logf("reading the replica directly right after a write: %d stale reads in 5", stale)
	require.Positive(t, stale, "the replica never lagged: the compat tests would prove nothing")
}
