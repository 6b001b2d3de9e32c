package pgtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shared is the cluster of the tests that leave it as they found it.
var shared *Cluster

const crashHelperEnv = "PGTEST_CRASH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		crashHelper()
	}
	start := time.Now()
	c, stop := Shared(m, Options{})
	shared = c
	if c != nil {
		fmt.Fprintf(os.Stderr, "pgtest: shared cluster (PostgreSQL %d, primary + 1 replica) started in %v\n",
			c.Version()/10000, time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func exec1(t *testing.T, ctx context.Context, dsn, sql string, args ...any) {
	t.Helper()
	require.NoError(t, Exec(ctx, dsn, sql, args...), sql)
}

func query(t *testing.T, ctx context.Context, dsn, sql string, args ...any) string {
	t.Helper()
	s, err := QueryString(ctx, dsn, sql, args...)
	require.NoError(t, err, sql)
	return s
}

// write inserts id into table on the primary and returns
// pg_current_wal_lsn() after it. The commit is synchronous whatever the
// cluster's settings: with synchronous_commit=off the commit record may not
// have been written yet, and pg_current_wal_lsn() (the write position) would
// come before it.
func write(t *testing.T, ctx context.Context, c *Cluster, table string, id int) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.PrimaryDSN())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SET synchronous_commit = on")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO "+table+" VALUES ($1)", id)
	require.NoError(t, err)
	var lsn string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))
	return lsn
}

// waitFor runs PostgreSQL 19's WAIT FOR LSN on dsn and returns its status.
func waitFor(t *testing.T, ctx context.Context, dsn, lsn string, timeoutMs int) string {
	t.Helper()
	return query(t, ctx, dsn, fmt.Sprintf("WAIT FOR LSN '%s' WITH (TIMEOUT %d, NO_THROW)", lsn, timeoutMs))
}

// visible reports whether row id of table is visible on dsn.
func visible(t *testing.T, ctx context.Context, dsn, table string, id int) bool {
	t.Helper()
	return query(t, ctx, dsn, "SELECT (count(*) > 0)::text FROM "+table+" WHERE id = $1", id) == "true"
}

// clusterPids returns the pids of every server process of c: postmasters,
// their children and whatever else works in a data directory.
func clusterPids(c *Cluster) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var pids []int
	for _, n := range append([]*node{c.primary}, c.replicas...) {
		pids = append(pids, nodePids(n)...)
	}
	return pids
}

func pidsOf(c *Cluster, replica int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return nodePids(c.replicas[replica])
}

func nodePids(n *node) []int {
	seen := map[int]bool{}
	var pids []int
	add := func(ps ...int) {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				pids = append(pids, p)
			}
		}
	}
	if p := n.pid(); p != 0 {
		add(p)
		add(children(p)...)
	}
	add(inDir(n.data)...)
	return pids
}

func requireGone(t *testing.T, pids []int) {
	t.Helper()
	var left []int
	for _, p := range pids {
		if alive(p) {
			left = append(left, p)
		}
	}
	require.Empty(t, left, "server processes still running")
}

// The harness proof: read-your-writes through WAIT FOR LSN on a replica, and
// a paused replay that makes it time out.
func TestReadYourWrites(t *testing.T) {
	c := Need(t, shared)
	ctx := testCtx(t, time.Minute)
	p, r := c.PrimaryDSN(), c.ReplicaDSN(0)
	require.Equal(t, WantMajor, c.Version()/10000)

	exec1(t, ctx, p, "DROP TABLE IF EXISTS ryw") // -count=N reruns on the same cluster
	exec1(t, ctx, p, "CREATE TABLE ryw (id int PRIMARY KEY)")
	lsn := write(t, ctx, c, "ryw", 1)
	assert.Equal(t, "success", waitFor(t, ctx, r, lsn, 5000))
	assert.True(t, visible(t, ctx, r, "ryw", 1))

	require.NoError(t, c.PauseReplay(ctx, 0))
	t.Cleanup(func() { _ = c.ResumeReplay(context.Background(), 0) }) // the cluster is shared
	lsn = write(t, ctx, c, "ryw", 2)
	assert.Equal(t, "timeout", waitFor(t, ctx, r, lsn, 300))
	assert.False(t, visible(t, ctx, r, "ryw", 2))

	require.NoError(t, c.ResumeReplay(ctx, 0))
	assert.Equal(t, "success", waitFor(t, ctx, r, lsn, 5000))
	assert.True(t, visible(t, ctx, r, "ryw", 2))

	// WaitReplayed agrees, and so does a WAIT FOR on the primary.
	lsn = write(t, ctx, c, "ryw", 3)
	require.NoError(t, c.WaitReplayed(ctx, 0, lsn))
	assert.True(t, visible(t, ctx, r, "ryw", 3))
	assert.Equal(t, "not in recovery", waitFor(t, ctx, p, lsn, 100))
	assert.Equal(t, "true", query(t, ctx, r, "SELECT pg_is_in_recovery()::text"))
}

func TestPauseBoundedByContext(t *testing.T) {
	c := Need(t, shared)
	ctx := testCtx(t, time.Minute)
	require.NoError(t, c.PauseReplay(ctx, 0))
	require.NoError(t, c.PauseReplay(ctx, 0), "pausing twice")
	t.Cleanup(func() { _ = c.ResumeReplay(context.Background(), 0) })
	exec1(t, ctx, c.PrimaryDSN(), "CREATE TABLE IF NOT EXISTS pause_ctx (id int)")
	lsn := write(t, ctx, c, "pause_ctx", 1)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := c.WaitReplayed(short, 0, lsn)
	require.Error(t, err, "replayed %s while paused: replay at %s, pause state %s", lsn,
		query(t, ctx, c.ReplicaDSN(0), "SELECT pg_last_wal_replay_lsn()::text"),
		query(t, ctx, c.ReplicaDSN(0), "SELECT pg_get_wal_replay_pause_state()"))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, c.ResumeReplay(ctx, 0))
	require.NoError(t, c.WaitReplayed(ctx, 0, lsn))

	_, err = c.runningReplicaLocked(1)
	assert.ErrorContains(t, err, "no replica 1")
}

func (c *Cluster) runningReplicaLocked(i int) (*node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningReplica(i)
}

func TestStopKillStartReplica(t *testing.T) {
	c := New(t, Options{})
	ctx := testCtx(t, 2*time.Minute)
	p, r := c.PrimaryDSN(), c.ReplicaDSN(0)
	exec1(t, ctx, p, "CREATE TABLE t (id int PRIMARY KEY)")

	t.Run("stop", func(t *testing.T) {
		pids := pidsOf(c, 0)
		require.NoError(t, c.StopReplica(ctx, 0))
		requireGone(t, pids)
		require.NoError(t, c.StopReplica(ctx, 0), "stopping a stopped replica")
		require.Error(t, Exec(ctx, r, "SELECT 1"), "a stopped replica accepts connections")
		require.ErrorContains(t, c.PauseReplay(ctx, 0), "not running")

		lsn := write(t, ctx, c, "t", 1)
		require.NoError(t, c.StartReplica(ctx, 0))
		assert.Equal(t, r, c.ReplicaDSN(0), "the replica moved")
		require.NoError(t, c.StartReplica(ctx, 0), "starting a running replica")
		assert.Equal(t, "success", waitFor(t, ctx, r, lsn, 5000))
		assert.True(t, visible(t, ctx, r, "t", 1))
	})

	t.Run("kill", func(t *testing.T) {
		pids := pidsOf(c, 0)
		require.Greater(t, len(pids), 3, "postmaster and children")
		start := time.Now()
		require.NoError(t, c.KillReplica(ctx, 0))
		t.Logf("kill took %v", time.Since(start))
		requireGone(t, pids)
		require.Error(t, Exec(ctx, r, "SELECT 1"), "a killed replica accepts connections")

		lsn := write(t, ctx, c, "t", 2)
		require.NoError(t, c.StartReplica(ctx, 0))
		require.NoError(t, c.WaitReplayed(ctx, 0, lsn))
		assert.Equal(t, "success", waitFor(t, ctx, r, lsn, 5000))
		assert.True(t, visible(t, ctx, r, "t", 2))
		assert.True(t, visible(t, ctx, r, "t", 1))
	})
}

func TestPromoteAndRebuild(t *testing.T) {
	c := New(t, Options{Replicas: 2})
	ctx := testCtx(t, 2*time.Minute)
	oldPrimary, r0, r1 := c.PrimaryDSN(), c.ReplicaDSN(0), c.ReplicaDSN(1)
	exec1(t, ctx, oldPrimary, "CREATE TABLE t (id int PRIMARY KEY)")
	lsn1 := write(t, ctx, c, "t", 1)
	require.NoError(t, c.WaitReplayed(ctx, 0, lsn1))
	require.NoError(t, c.WaitReplayed(ctx, 1, lsn1))

	start := time.Now()
	require.NoError(t, c.PromoteReplica(ctx, 0))
	t.Logf("promotion took %v", time.Since(start))
	require.Equal(t, r0, c.PrimaryDSN(), "the promoted replica is the primary")
	require.Equal(t, oldPrimary, c.ReplicaDSN(0), "the former primary takes the promoted replica's slot")
	require.Error(t, Exec(ctx, oldPrimary, "SELECT 1"), "the former primary is stopped")

	assert.Equal(t, "false", query(t, ctx, r0, "SELECT pg_is_in_recovery()::text"))
	assert.True(t, visible(t, ctx, r0, "t", 1))

	// After a promotion, WAIT FOR on the former replica says so, for an LSN
	// past what it replayed while a replica. (One it did replay is a success.)
	lsn2 := write(t, ctx, c, "t", 2)
	assert.Equal(t, "not in recovery", waitFor(t, ctx, r0, lsn2, 1000))
	assert.Equal(t, "success", waitFor(t, ctx, r0, lsn1, 1000))

	// Replica 1 follows the new primary.
	require.NoError(t, c.WaitReplayed(ctx, 1, lsn2))
	assert.Equal(t, "success", waitFor(t, ctx, r1, lsn2, 5000))
	assert.True(t, visible(t, ctx, r1, "t", 2))

	// The former primary must be rebuilt, not restarted.
	require.ErrorContains(t, c.StartReplica(ctx, 0), "RebuildReplica")
	start = time.Now()
	require.NoError(t, c.RebuildReplica(ctx, 0))
	t.Logf("rebuild took %v", time.Since(start))
	require.Equal(t, oldPrimary, c.ReplicaDSN(0), "a rebuilt replica keeps its port")
	assert.Equal(t, "true", query(t, ctx, oldPrimary, "SELECT pg_is_in_recovery()::text"))
	assert.Equal(t, "success", waitFor(t, ctx, oldPrimary, lsn2, 5000))
	assert.True(t, visible(t, ctx, oldPrimary, "t", 2))

	lsn3 := write(t, ctx, c, "t", 3)
	for i := range 2 {
		assert.Equal(t, "success", waitFor(t, ctx, c.ReplicaDSN(i), lsn3, 5000), "replica %d", i)
		assert.True(t, visible(t, ctx, c.ReplicaDSN(i), "t", 3), "replica %d", i)
	}

	// And the rebuilt former primary can be promoted in turn.
	require.NoError(t, c.PromoteReplica(ctx, 0))
	require.Equal(t, oldPrimary, c.PrimaryDSN())
	lsn4 := write(t, ctx, c, "t", 4)
	require.NoError(t, c.WaitReplayed(ctx, 1, lsn4))
}

func TestTwoReplicasAndSettings(t *testing.T) {
	c := New(t, Options{Replicas: 2, Settings: map[string]string{
		"synchronous_commit": "off",
		"work_mem":           "5MB",
		"application_name":   "it's pgtest",
	}})
	ctx := testCtx(t, 2*time.Minute)
	require.Equal(t, 2, c.Replicas())
	dsns := []string{c.PrimaryDSN(), c.ReplicaDSN(0), c.ReplicaDSN(1)}
	assert.Len(t, map[string]bool{dsns[0]: true, dsns[1]: true, dsns[2]: true}, 3, "distinct servers")
	for _, dsn := range dsns {
		assert.Equal(t, "off", query(t, ctx, dsn, "SHOW synchronous_commit"), dsn)
		assert.Equal(t, "5MB", query(t, ctx, dsn, "SHOW work_mem"), dsn)
		assert.Equal(t, "it's pgtest", query(t, ctx, dsn, "SELECT current_setting('application_name')"), dsn)
		assert.Equal(t, "off", query(t, ctx, dsn, "SHOW fsync"), dsn)
		assert.Equal(t, "off", query(t, ctx, dsn, "SHOW jit"), dsn)
	}
	assert.Equal(t, "2", query(t, ctx, c.PrimaryDSN(),
		"SELECT count(*)::text FROM pg_stat_replication WHERE state = 'streaming'"))

	// Pausing one replica leaves the other alone.
	exec1(t, ctx, c.PrimaryDSN(), "CREATE TABLE t (id int PRIMARY KEY)")
	require.NoError(t, c.PauseReplay(ctx, 0))
	lsn := write(t, ctx, c, "t", 1)
	assert.Equal(t, "success", waitFor(t, ctx, c.ReplicaDSN(1), lsn, 5000))
	assert.True(t, visible(t, ctx, c.ReplicaDSN(1), "t", 1))
	assert.Equal(t, "timeout", waitFor(t, ctx, c.ReplicaDSN(0), lsn, 300))
	require.NoError(t, c.ResumeReplay(ctx, 0))
	assert.Equal(t, "success", waitFor(t, ctx, c.ReplicaDSN(0), lsn, 5000))

	// Rebuilding a replica (no promotion) gives a fresh copy on the same port.
	r1 := c.ReplicaDSN(1)
	require.NoError(t, c.RebuildReplica(ctx, 1))
	require.Equal(t, r1, c.ReplicaDSN(1))
	lsn = write(t, ctx, c, "t", 2)
	assert.Equal(t, "success", waitFor(t, ctx, r1, lsn, 5000))
	assert.True(t, visible(t, ctx, r1, "t", 2))
	assert.True(t, visible(t, ctx, r1, "t", 1))
}

func TestBadSettings(t *testing.T) {
	_, err := Start(t.Context(), Options{BinDir: t.TempDir()})
	require.ErrorIs(t, err, ErrNoPostgres)
	t.Log(err)

	dir, err := FindBinaries()
	if err != nil {
		t.Skip(err)
	}
	_, err = Start(t.Context(), Options{BinDir: dir, Settings: map[string]string{"bad name": "x"}})
	require.ErrorContains(t, err, "not a parameter name")

	// A setting the server rejects: the error carries the server's log.
	_, err = Start(t.Context(), Options{BinDir: dir, Replicas: NoReplicas, Settings: map[string]string{"shared_buffers": "lots"}})
	require.Error(t, err)
	t.Log(err)
	assert.ErrorContains(t, err, "shared_buffers")
	assert.NotErrorIs(t, err, ErrNoPostgres)
}

func TestCloseStopsEverything(t *testing.T) {
	dir, err := FindBinaries()
	if err != nil {
		if Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := testCtx(t, 2*time.Minute)
	start := time.Now()
	c, err := Start(ctx, Options{BinDir: dir, Replicas: 2})
	require.NoError(t, err)
	t.Logf("primary + 2 replicas started in %v", time.Since(start))
	defer c.Close()

	require.NoError(t, c.KillReplica(ctx, 1)) // a killed replica is no trouble
	pids := clusterPids(c)
	require.Greater(t, len(pids), 10, "postmasters and children")
	dsns := []string{c.PrimaryDSN(), c.ReplicaDSN(0)}
	start = time.Now()
	require.NoError(t, c.Close())
	t.Logf("close took %v", time.Since(start))
	requireGone(t, pids)
	_, err = os.Stat(c.dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the cluster's directory is removed: %v", err)
	for _, dsn := range dsns {
		assert.Error(t, Exec(ctx, dsn, "SELECT 1"), dsn)
	}

	require.NoError(t, c.Close(), "closing twice")
	assert.ErrorIs(t, c.StartReplica(ctx, 0), errClosed)
	assert.ErrorIs(t, c.PromoteReplica(ctx, 0), errClosed)
}

func TestNoReplicas(t *testing.T) {
	c := New(t, Options{Replicas: NoReplicas})
	ctx := testCtx(t, time.Minute)
	require.Equal(t, 0, c.Replicas())
	assert.Equal(t, "false", query(t, ctx, c.PrimaryDSN(), "SELECT pg_is_in_recovery()::text"))
	assert.ErrorContains(t, c.PauseReplay(ctx, 0), "no replica 0")
}

// A server older than 19: the cluster works, WAIT FOR LSN does not parse.
func TestOlderServer(t *testing.T) {
	dir, major, err := FindOlderBinaries()
	if errors.Is(err, ErrNoPostgres) {
		t.Skip(err)
	}
	require.NoError(t, err)
	start := time.Now()
	c := New(t, Options{BinDir: dir})
	t.Logf("PostgreSQL %d primary + 1 replica started in %v", major, time.Since(start))
	ctx := testCtx(t, 2*time.Minute)
	require.Equal(t, dir, c.BinDir())
	require.Equal(t, major, c.Version()/10000)

	exec1(t, ctx, c.PrimaryDSN(), "CREATE TABLE t (id int PRIMARY KEY)")
	lsn := write(t, ctx, c, "t", 1)
	require.NoError(t, c.WaitReplayed(ctx, 0, lsn))
	assert.True(t, visible(t, ctx, c.ReplicaDSN(0), "t", 1))

	_, err = QueryString(ctx, c.ReplicaDSN(0), fmt.Sprintf("WAIT FOR LSN '%s' WITH (TIMEOUT 100, NO_THROW)", lsn))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42601", pgErr.Code, "syntax error")

	require.NoError(t, c.PauseReplay(ctx, 0))
	lsn = write(t, ctx, c, "t", 2)
	assert.False(t, visible(t, ctx, c.ReplicaDSN(0), "t", 2))
	require.NoError(t, c.ResumeReplay(ctx, 0))
	require.NoError(t, c.WaitReplayed(ctx, 0, lsn))
	assert.True(t, visible(t, ctx, c.ReplicaDSN(0), "t", 2))

	require.NoError(t, c.KillReplica(ctx, 0))
	require.NoError(t, c.StartReplica(ctx, 0))
	require.NoError(t, c.PromoteReplica(ctx, 0))
	assert.Equal(t, "false", query(t, ctx, c.PrimaryDSN(), "SELECT pg_is_in_recovery()::text"))
}

// BenchmarkStart measures Start and Close of a primary with one replica.
func BenchmarkStart(b *testing.B) {
	dir, err := FindBinaries()
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		c, err := Start(b.Context(), Options{BinDir: dir})
		require.NoError(b, err)
		require.NoError(b, c.Close())
	}
}

// crashReport is what crashHelper prints for TestCrashLeavesNoServers.
type crashReport struct {
	Pids []int
	Dir  string
}

// crashHelper is the child process of TestCrashLeavesNoServers (run by
// TestMain): it starts a cluster, reports it and waits to be killed.
func crashHelper() {
	c, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(crashReport{Pids: clusterPids(c), Dir: c.dir})
	fmt.Printf("REPORT %s\n", b)
	time.Sleep(time.Minute)
	os.Exit(1)
}

// A test binary that dies without Close (SIGKILL, a crash) leaves no server
// running, and the next one removes its directory.
func TestCrashLeavesNoServers(t *testing.T) {
	if _, err := FindBinaries(); err != nil {
		if Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()

	var rep crashReport
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		require.False(t, strings.HasPrefix(sc.Text(), "ERROR"), sc.Text())
		if line, ok := strings.CutPrefix(sc.Text(), "REPORT "); ok {
			require.NoError(t, json.Unmarshal([]byte(line), &rep))
			break
		}
		t.Log(sc.Text())
	}
	require.Greater(t, len(rep.Pids), 10, "no cluster reported")
	require.True(t, alive(rep.Pids[0]), "the primary's postmaster")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	ctx := testCtx(t, 30*time.Second)
	start := time.Now()
	require.NoError(t, waitGone(ctx, rep.Pids))
	t.Logf("servers gone %v after the test binary was killed", time.Since(start))

	_, err = os.Stat(rep.Dir)
	require.NoError(t, err, "the dead binary's directory is still there")
	sweepStale()
	_, err = os.Stat(rep.Dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "sweepStale removes it: %v", err)
}

func TestFindBinaries(t *testing.T) {
	dir, err := FindBinaries()
	if err != nil {
		if Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	major, err := MajorVersion(dir)
	require.NoError(t, err)
	assert.Equal(t, WantMajor, major)

	t.Run("PGWAIT_PG_BIN wrong", func(t *testing.T) {
		t.Setenv("PGWAIT_PG_BIN", t.TempDir())
		_, err := findBinaries()
		require.ErrorIs(t, err, ErrNoPostgres)
		t.Log(err)
		assert.ErrorContains(t, err, "PGWAIT_PG_BIN")
		if old, major, err := FindOlderBinaries(); err == nil {
			t.Setenv("PGWAIT_PG_BIN", old)
			_, err := findBinaries()
			require.ErrorIs(t, err, ErrNoPostgres)
			assert.ErrorContains(t, err, "holds PostgreSQL "+strconv.Itoa(major))
		}
	})
	t.Run("PGWAIT_PG_BIN right", func(t *testing.T) {
		t.Setenv("PGWAIT_PG_BIN", dir)
		got, err := findBinaries()
		require.NoError(t, err)
		assert.Equal(t, dir, got)
	})
	t.Run("embedded script", func(t *testing.T) {
		// With nothing set, the script finds an installed 19 or its cache
		// (filled by then: FindBinaries found one).
		t.Setenv("PGWAIT_PG_BIN", "")
		got, err := runFetchScript()
		require.NoError(t, err)
		major, err := MajorVersion(got)
		require.NoError(t, err)
		assert.Equal(t, WantMajor, major)
	})
	t.Run("MajorVersion", func(t *testing.T) {
		_, err := MajorVersion(t.TempDir())
		assert.ErrorContains(t, err, "no postgres binary")
	})
}

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		require, ci string
		want        bool
	}{
		{"", "", false},
		{"1", "", true},
		{"true", "", true},
		{"0", "", false},
		{"", "true", true},
		{"", "1", true},
		{"", "false", false},
		{"0", "false", false},
	} {
		t.Setenv("PGWAIT_REQUIRE_PG", tc.require)
		t.Setenv("CI", tc.ci)
		assert.Equal(t, tc.want, Required(), "PGWAIT_REQUIRE_PG=%q CI=%q", tc.require, tc.ci)
	}
}

func TestTail(t *testing.T) {
	assert.Equal(t, "c\nd", tail([]byte("a\nb\nc\nd\n"), 2))
	assert.Equal(t, "a\nb", tail([]byte("a\nb"), 5))
	assert.Equal(t, "", tail(nil, 5))
}

func TestCPUTimes(t *testing.T) {
	c := Need(t, shared)
	ctx := testCtx(t, time.Minute)
	p0, r0, err := c.CPUTimes()
	require.NoError(t, err)
	require.Len(t, r0, c.Replicas())
	assert.Positive(t, p0.Total, "the primary has run")
	assert.Positive(t, p0.WALSenders, "the primary has streamed")
	assert.Positive(t, r0[0].Replay, "the replica has replayed")
	// Work in a backend that then exits still counts: the postmaster's
	// reaped children carry it.
	exec1(t, ctx, c.PrimaryDSN(), "SELECT count(*) FROM generate_series(1, 3000000)")
	// The backend exits on its own time after the client disconnects.
	require.Eventually(t, func() bool {
		p1, _, err := c.CPUTimes()
		require.NoError(t, err)
		return p1.Sub(p0).Exited > 50*time.Millisecond
	}, 10*time.Second, 20*time.Millisecond, "a query that counted to three million, in a backend that exited")
}
