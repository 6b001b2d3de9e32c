// Package pgtest runs real PostgreSQL servers for tests: a primary and
// streaming replicas on 127.0.0.1, started from scratch in a temporary
// directory in a second or two and removed afterwards.
//
// A test that wants a cluster of its own calls New; a package whose tests
// share one starts it in TestMain with Shared. Either way the servers are
// child processes of the test binary and die with it, even when it crashes.
//
// The binaries are PostgreSQL 19's (the first with WAIT FOR LSN), found by
// FindBinaries, which fetches them on Debian and Ubuntu when none is
// installed; Options.BinDir picks others, such as the older server that
// FindOlderBinaries finds, to test the driver's fallback path. Run as root,
// the servers run as the OS user postgres, created if missing.
//
// Replicas are numbered from 0. The methods that control them (PauseReplay,
// StopReplica, KillReplica, StartReplica, PromoteReplica, RebuildReplica,
// WaitReplayed) are bounded by their context and safe for concurrent use;
// they serialize on the cluster.
//
// CPUTimes reads the CPU time each server's processes have used, from /proc,
// for benchmarks that report server load.
//
// Each server listens on a free port of 127.0.0.1 (no Unix socket), trusts
// every connection (user postgres, database postgres) and logs to
// postgres.log beside its data directory. Its postgresql.conf is initdb's
// plus fsync=off, wal_level=replica, max_wal_senders=20, wal_keep_size=256MB,
// hot_standby=on, wal_receiver_status_interval=1s, wal_writer_delay=10ms,
// wal_retrieve_retry_interval=100ms, shared_buffers=16MB,
// dynamic_shared_memory_type=mmap, jit=off, then Options.Settings. Replicas
// stream without replication slots.
//
// A cluster's directory is in /dev/shm when that is a roomy tmpfs (data
// directories in memory start several times faster), else in the temporary
// directory; Close removes it, and the next Start removes those that dead
// test binaries left behind.
//
// Environment:
//
//	PGWAIT_PG_BIN      PostgreSQL 19's bin directory (see FindBinaries)
//	PGWAIT_PG_OLD_BIN  an older PostgreSQL's bin directory (see FindOlderBinaries)
//	PGWAIT_CACHE_DIR   where scripts/postgres19 keeps what it fetches
//	PGWAIT_REQUIRE_PG  1: fail, do not skip, without PostgreSQL (see Required)
//	CI                 set: the same
//	PGWAIT_TMPDIR      where the clusters' directories go
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configures a cluster. The zero value is a PostgreSQL 19 primary
// with one replica.
type Options struct {
	// Replicas is the number of streaming replicas: 0 means 1, NoReplicas
	// means none.
	Replicas int
	// BinDir holds the server binaries (postgres, initdb, pg_basebackup);
	// empty means FindBinaries.
	BinDir string
	// Settings are postgresql.conf parameters for every server, after and
	// over pgtest's own, e.g. {"synchronous_commit": "off"}. Values are
	// written quoted.
	Settings map[string]string
	// ServerTLS, when not empty, makes the servers accept TLS connections
	// (ssl=on): server i (0 is the primary, 1, 2... the replicas in the
	// order they are numbered from 0) uses ServerTLS[i], or the last entry
	// when there are fewer. An entry without Cert leaves its server without
	// TLS. pgtest copies the files beside the server's data directory,
	// readable by the server only.
	ServerTLS []KeyPair
}

// KeyPair is a server's TLS certificate (chain) and private key, both PEM.
type KeyPair struct {
	Cert, Key []byte
}

// NoReplicas as Options.Replicas starts a primary alone.
const NoReplicas = -1

// Cluster is a running primary with its replicas. Close stops it.
type Cluster struct {
	mu       sync.Mutex
	binDir   string
	cred     *syscall.Credential // nil unless run as root
	dir      string
	version  int
	primary  *node
	replicas []*node
	nextNode int
	tls      []KeyPair
	closed   bool
	closeErr error
}

// errClosed is returned by the methods of a closed Cluster.
var errClosed = errors.New("pgtest: cluster is closed")

// baseSettings make the servers quick to start, independent of the machine's
// PostgreSQL configuration, and replicate promptly. Options.Settings come
// after them.
var baseSettings = [][2]string{
	{"listen_addresses", "127.0.0.1"},
	{"unix_socket_directories", ""}, // TCP only: no socket path limits, no /var/run/postgresql
	{"fsync", "off"},
	{"wal_level", "replica"},
	{"max_wal_senders", "20"},
	{"max_replication_slots", "20"},
	{"wal_keep_size", "256MB"}, // replicas stopped for a while can catch up without slots
	{"hot_standby", "on"},
	{"wal_receiver_status_interval", "1s"},
	// With synchronous_commit=off, commits reach the replicas within 10 ms
	// rather than the default 200.
	{"wal_writer_delay", "10ms"},
	{"wal_retrieve_retry_interval", "100ms"}, // a restarted primary is found again at once
	{"shared_buffers", "16MB"},
	// Dynamic shared memory in files under the data directory (pg_dynshmem)
	// rather than /dev/shm/PostgreSQL.*: a killed server's segments go with
	// the cluster's directory instead of piling up in /dev/shm.
	{"dynamic_shared_memory_type", "mmap"},
	{"max_connections", "100"},
	{"jit", "off"},
	{"logging_collector", "off"}, // stderr goes to postgres.log beside the data directory
	{"log_line_prefix", "%m [%p] %q%a "},
	{"log_min_messages", "warning"},
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// Start starts a cluster: initdb, the primary, then each replica from a
// pg_basebackup of it, streaming. It returns once every server accepts
// connections and every replica streams. On error nothing is left running.
// Errors wrap ErrNoPostgres when the binaries cannot be had.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	if _, err := MajorVersion(binDir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoPostgres, err)
	}
	for _, tool := range []string{"initdb", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(binDir, tool)); err != nil {
			return nil, fmt.Errorf("%w: no %s in %s", ErrNoPostgres, tool, binDir)
		}
	}
	for k := range opts.Settings {
		if !settingName.MatchString(k) {
			return nil, fmt.Errorf("pgtest: Options.Settings: %q is not a parameter name", k)
		}
	}
	replicas := opts.Replicas
	switch {
	case replicas == 0:
		replicas = 1
	case replicas < 0:
		replicas = 0
	}

	cred, err := accountOnce()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := runTool(ctx, cred, filepath.Join(binDir, "postgres"), "--version"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root, the servers run as OS user %s, who cannot run %s/postgres (make the directory and its parents readable by all): %v",
				serverUser, binDir, err)
		}
	}
	sweepOnce.Do(sweepStale)
	dir, err := os.MkdirTemp(tempBase(), fmt.Sprintf("pgtest-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cl := &Cluster{binDir: binDir, cred: cred, dir: dir, tls: opts.ServerTLS}
	defer func() {
		if err != nil {
			cl.Close()
		}
	}()
	c = cl
	if err := chown(dir, cred); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}

	c.primary, err = c.newNode()
	if err != nil {
		return nil, err
	}
	if err := runTool(ctx, cred, filepath.Join(binDir, "initdb"), "-D", c.primary.data,
		"--locale=C.UTF-8", "-E", "UTF8", "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := appendConfig(filepath.Join(c.primary.data, "postgresql.conf"), opts.Settings); err != nil {
		return nil, err
	}
	if err := c.startFresh(ctx, c.primary, false); err != nil {
		return nil, err
	}

	c.replicas = make([]*node, replicas)
	for i := range c.replicas {
		if c.replicas[i], err = c.newNode(); err != nil {
			return nil, err
		}
	}
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, n := range c.replicas {
		wg.Go(func() {
			if errs[i] = c.baseBackup(ctx, n); errs[i] == nil {
				errs[i] = c.startFresh(ctx, n, true)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var v string
	if v, err = QueryString(ctx, c.primary.dsn(), "SELECT current_setting('server_version_num')"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if c.version, err = strconv.Atoi(v); err != nil {
		return nil, fmt.Errorf("pgtest: server_version_num %q: %w", v, err)
	}
	return c, nil
}

// newNode makes the directory of a new node, owned by the server account.
func (c *Cluster) newNode() (*node, error) {
	name := "node" + strconv.Itoa(c.nextNode)
	c.nextNode++
	d := filepath.Join(c.dir, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := chown(d, c.cred); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	n := &node{name: name, dir: d, data: filepath.Join(d, "data"), logPath: filepath.Join(d, "postgres.log")}
	if len(c.tls) > 0 {
		kp := c.tls[min(c.nextNode-1, len(c.tls)-1)]
		if len(kp.Cert) > 0 {
			n.tlsCert, n.tlsKey = filepath.Join(d, "server.crt"), filepath.Join(d, "server.key")
			for _, f := range []struct {
				path string
				data []byte
			}{{n.tlsCert, kp.Cert}, {n.tlsKey, kp.Key}} {
				if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
					return nil, fmt.Errorf("pgtest: %w", err)
				}
				if err := chown(f.path, c.cred); err != nil {
					return nil, fmt.Errorf("pgtest: %w", err)
				}
			}
		}
	}
	return n, nil
}

// appendConfig adds pgtest's settings, then the caller's, to a
// postgresql.conf.
func appendConfig(path string, extra map[string]string) error {
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	for _, kv := range baseSettings {
		fmt.Fprintf(&b, "%s = %s\n", kv[0], quote(kv[1]))
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		b.WriteString("# Options.Settings\n")
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quote(extra[k]))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("pgtest: %w", err)
	}
	return f.Close()
}

// quote makes s a postgresql.conf (and SQL) string literal.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// baseBackup fills n's (absent) data directory with a base backup of the
// current primary, set up to stream from it.
func (c *Cluster) baseBackup(ctx context.Context, n *node) error {
	if err := runTool(ctx, c.cred, filepath.Join(c.binDir, "pg_basebackup"),
		"-D", n.data, "-h", "127.0.0.1", "-p", strconv.Itoa(c.primary.port), "-U", "postgres",
		"-X", "stream", "-R", "-c", "fast", "--no-sync", "--no-manifest"); err != nil {
		return fmt.Errorf("pgtest: %s: %w", n.name, err)
	}
	return nil
}

// Close stops every server of the cluster (fast shutdown, escalated to
// SIGQUIT and SIGKILL when that takes over 30 s) and removes its directory.
// It may be called more than once; later calls return the first's result.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	nodes := append([]*node{c.primary}, c.replicas...)
	for _, n := range nodes {
		if n != nil && n.running() {
			signalAll(n, syscall.SIGCONT) // a frozen server could not stop
		}
	}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n == nil {
			continue
		}
		wg.Go(func() { errs[i] = c.stopNode(context.Background(), n) })
	}
	wg.Wait()
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: removing the cluster's directory: %v", err))
	}
	c.closeErr = errors.Join(errs...)
	return c.closeErr
}

// PrimaryDSN returns the keyword/value connection string of the primary
// (user and database postgres, no password, sslmode=disable). After
// PromoteReplica it is the promoted server's.
func (c *Cluster) PrimaryDSN() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary.dsn()
}

// ReplicaDSN returns the connection string of replica i, numbered from 0. It
// panics if there is no replica i. The string stays valid across
// StopReplica/StartReplica and RebuildReplica (a replica keeps its port).
func (c *Cluster) ReplicaDSN(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i].dsn()
}

// Replicas returns the number of replicas.
func (c *Cluster) Replicas() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.replicas)
}

// BinDir returns the directory of the server binaries the cluster runs.
func (c *Cluster) BinDir() string { return c.binDir }

// Version returns the servers' server_version_num, e.g. 190000 or 150018.
func (c *Cluster) Version() int { return c.version }

// PrimaryLogFile returns the path of the primary's server log. It is removed
// by Close.
func (c *Cluster) PrimaryLogFile() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary.logPath
}

// ReplicaLogFile returns the path of replica i's server log. It is removed by
// Close.
func (c *Cluster) ReplicaLogFile(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i].logPath
}

// replica returns replica i; the caller holds c.mu.
func (c *Cluster) replica(i int) (*node, error) {
	if c.closed {
		return nil, errClosed
	}
	if i < 0 || i >= len(c.replicas) {
		return nil, fmt.Errorf("pgtest: no replica %d (the cluster has %d)", i, len(c.replicas))
	}
	return c.replicas[i], nil
}

// runningReplica returns replica i, which must be running.
func (c *Cluster) runningReplica(i int) (*node, error) {
	n, err := c.replica(i)
	if err != nil {
		return nil, err
	}
	if !n.running() {
		return nil, fmt.Errorf("pgtest: replica %d is not running", i)
	}
	return n, nil
}

// PauseReplay pauses WAL replay on replica i (pg_wal_replay_pause) and
// returns once the replica reports it paused. The replica still receives
// WAL; it applies none until ResumeReplay.
func (c *Cluster) PauseReplay(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.runningReplica(i)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, n.dsn())
	if err != nil {
		return fmt.Errorf("pgtest: pausing replica %d: %w", i, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return fmt.Errorf("pgtest: pausing replica %d: %w", i, err)
	}
	for {
		var state string
		if err := conn.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			return fmt.Errorf("pgtest: pausing replica %d: %w", i, err)
		}
		if state == "paused" {
			return nil
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("pgtest: pausing replica %d: still %q: %w", i, state, err)
		}
	}
}

// ResumeReplay resumes WAL replay on replica i (pg_wal_replay_resume).
func (c *Cluster) ResumeReplay(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.runningReplica(i)
	if err != nil {
		return err
	}
	if err := Exec(ctx, n.dsn(), "SELECT pg_wal_replay_resume()"); err != nil {
		return fmt.Errorf("pgtest: resuming replica %d: %w", i, err)
	}
	return nil
}

// StopReplica shuts replica i down (fast shutdown) and returns once its
// processes have exited. Stopping a stopped replica does nothing.
func (c *Cluster) StopReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.replica(i)
	if err != nil {
		return err
	}
	return c.stopNode(ctx, n)
}

// KillReplica SIGKILLs replica i's postmaster, like a crash, and returns once
// all its processes are gone. StartReplica then recovers it.
func (c *Cluster) KillReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.replica(i)
	if err != nil {
		return err
	}
	return c.killNode(ctx, n)
}

// StartReplica starts stopped (or killed) replica i again on its port and
// returns once it accepts connections and streams from the primary. A
// running replica is left alone. The former primary that PromoteReplica put
// in slot i cannot be started: RebuildReplica it.
func (c *Cluster) StartReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.replica(i)
	if err != nil {
		return err
	}
	if n.running() {
		return nil
	}
	if n.stale {
		return fmt.Errorf("pgtest: replica %d is the former primary left behind by PromoteReplica; use RebuildReplica", i)
	}
	return c.restartStandby(ctx, n)
}

// restartStandby starts an existing standby on its port and waits until it
// streams; on failure it is stopped again.
func (c *Cluster) restartStandby(ctx context.Context, n *node) error {
	if err := c.launch(n); err != nil {
		return err
	}
	if err := c.waitReady(ctx, n, true); err != nil {
		c.stopNode(context.Background(), n)
		return err
	}
	return nil
}

// RebuildReplica makes replica i a fresh replica of the current primary: it
// stops it, deletes its data, takes a pg_basebackup of the primary and starts
// it on its old port, streaming. This is how the former primary that
// PromoteReplica leaves in slot i rejoins the cluster.
func (c *Cluster) RebuildReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.replica(i)
	if err != nil {
		return err
	}
	if err := c.stopNode(ctx, n); err != nil {
		return err
	}
	if err := os.RemoveAll(n.data); err != nil {
		return fmt.Errorf("pgtest: rebuilding replica %d: %w", i, err)
	}
	if err := c.baseBackup(ctx, n); err != nil {
		return err
	}
	n.stale = false
	return c.restartStandby(ctx, n)
}

// PromoteReplica fails over to replica i:
//
//  1. the primary is shut down (fast: the replicas receive all of its WAL);
//  2. replica i is promoted (pg_promote) and becomes the primary:
//     PrimaryDSN returns its connection string from then on;
//  3. the former primary, stopped, takes slot i: ReplicaDSN(i) is its
//     address, StartReplica(i) refuses it and RebuildReplica(i) makes it a
//     replica of the new primary;
//  4. the other replicas are pointed at the new primary (primary_conninfo)
//     and follow its timeline; running ones are waited for until they
//     stream from it, unless their replay is paused.
//
// Replica i must be running.
func (c *Cluster) PromoteReplica(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.runningReplica(i)
	if err != nil {
		return err
	}
	if n.stale {
		return fmt.Errorf("pgtest: replica %d is the former primary; RebuildReplica it first", i)
	}
	old := c.primary
	if err := c.stopNode(ctx, old); err != nil {
		return fmt.Errorf("pgtest: promoting replica %d: stopping the primary: %w", i, err)
	}
	wait := 60
	if dl, ok := ctx.Deadline(); ok {
		wait = max(1, int(time.Until(dl)/time.Second))
	}
	var promoted bool
	conn, err := pgx.Connect(ctx, n.dsn())
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT pg_promote(true, $1)", wait).Scan(&promoted)
		conn.Close(context.Background())
	}
	if err == nil && !promoted {
		err = fmt.Errorf("not promoted within %d s", wait)
	}
	if err != nil {
		return fmt.Errorf("pgtest: promoting replica %d: %w; its log:\n%s", i, err, n.logTail())
	}
	c.primary, c.replicas[i] = n, old
	old.stale = true

	conninfo := quote(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres sslmode=disable", n.port))
	for j, r := range c.replicas {
		if j == i || r.stale {
			continue
		}
		if err := c.follow(ctx, r, conninfo); err != nil {
			return fmt.Errorf("pgtest: promoting replica %d: pointing replica %d at it: %w", i, j, err)
		}
	}
	return nil
}

// follow points replica r at the primary of conninfo (a quoted literal).
func (c *Cluster) follow(ctx context.Context, r *node, conninfo string) error {
	if !r.running() {
		f, err := os.OpenFile(filepath.Join(r.data, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(f, "primary_conninfo = %s\n", conninfo); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	conn, err := pgx.Connect(ctx, r.dsn())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = "+conninfo); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	for {
		var state, status string
		var port int
		err := conn.QueryRow(ctx, `SELECT pg_get_wal_replay_pause_state(),
			coalesce((SELECT status FROM pg_stat_wal_receiver), 'none'),
			coalesce((SELECT sender_port FROM pg_stat_wal_receiver), 0)`).Scan(&state, &status, &port)
		if err != nil {
			return err
		}
		if state != "not paused" || (status == "streaming" && port == c.primary.port) {
			return nil
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("not streaming from the new primary (wal receiver %s, port %d): %w; its log:\n%s",
				status, port, err, r.logTail())
		}
	}
}

// WaitReplayed waits until replica i has replayed the WAL up to lsn (text
// form, e.g. "0/3000060", as pg_current_wal_lsn() returns it): polls
// pg_last_wal_replay_lsn() >= lsn.
func (c *Cluster) WaitReplayed(ctx context.Context, i int, lsn string) error {
	c.mu.Lock()
	n, err := c.runningReplica(i)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, n.dsn())
	if err != nil {
		return fmt.Errorf("pgtest: replica %d: %w", i, err)
	}
	defer conn.Close(context.Background())
	for {
		var done bool
		var at string
		err := conn.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false), coalesce(pg_last_wal_replay_lsn()::text, 'none')", lsn).Scan(&done, &at)
		if err != nil {
			return fmt.Errorf("pgtest: replica %d: waiting for %s: %w", i, lsn, err)
		}
		if done {
			return nil
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("pgtest: replica %d replayed up to %s, not %s: %w", i, at, lsn, err)
		}
	}
}

// Exec connects to dsn, runs sql with args and disconnects.
func Exec(ctx context.Context, dsn, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// QueryString connects to dsn, runs sql with args and returns the first
// column of the first row, which must be of a text type (cast it: ::text)
// and not NULL.
func QueryString(ctx context.Context, dsn, sql string, args ...any) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var s string
	err = conn.QueryRow(ctx, sql, args...).Scan(&s)
	return s, err
}

// tempBase is the directory the clusters' directories go in:
// $PGWAIT_TMPDIR if set, else /dev/shm if it is a roomy tmpfs (data
// directories in memory start several times faster than on a busy disk),
// else the system's temporary directory.
func tempBase() string {
	if d := os.Getenv("PGWAIT_TMPDIR"); d != "" {
		return d
	}
	const shm, tmpfsMagic, room = "/dev/shm", 0x01021994, 2 << 30
	var st syscall.Statfs_t
	if syscall.Statfs(shm, &st) == nil && st.Type == tmpfsMagic &&
		st.Bavail*uint64(st.Bsize) >= room && syscall.Access(shm, 2 /* W_OK */) == nil {
		return shm
	}
	return os.TempDir()
}

var sweepOnce sync.Once

// sweepStale removes the directories that clusters of test binaries that
// died without Close left behind (pgtest-PID-*).
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(tempBase(), "pgtest-*-*"))
	if tempBase() != os.TempDir() {
		more, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*-*"))
		dirs = append(dirs, more...)
	}
	for _, d := range dirs {
		f := strings.SplitN(filepath.Base(d), "-", 3)
		pid, err := strconv.Atoi(f[1])
		if err != nil || pid == os.Getpid() || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}
