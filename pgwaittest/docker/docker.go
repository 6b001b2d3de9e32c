// Package docker gives test suites a PostgreSQL 19 primary and a streaming
// replica in Docker containers to run pgwait against, for machines without
// PostgreSQL 19 installed. It is the Docker-backed sibling of
// github.com/pgwait/pgwait/pgwaittest, in a module of its own so that only
// the suites that use it depend on Docker's client libraries
// (github.com/ory/dockertest/v3).
//
//	func TestCheckout(t *testing.T) {
//		pair := docker.New(t) // skips when no Docker engine answers
//		db := pair.Open(t)
//		...
//	}
//
// New and Start create, on a Docker network of their own:
//
//   - a primary from the official postgres image (DefaultImage, or
//     $PGWAIT_DOCKER_IMAGE, or WithImage), with wal_level=replica, a
//     replication role and a pg_hba.conf line that lets it connect from the
//     network;
//   - a replica from the same image, whose data directory is made by
//     pg_basebackup -R -X stream from the primary, over the network, before
//     it starts postgres as a hot standby streaming from the primary;
//
// and wait until the primary accepts connections and the replica streams.
// Both publish port 5432 on a random port of the Docker host, which DSN,
// PrimaryDSN and ReplicaDSN point at. Close (t.Cleanup, for New) removes both
// containers, their volumes and the network. The containers carry the label
// org.pgwait.pgwaittest, so that those of a test binary killed before its
// clean-up can be found:
//
//	docker rm -f -v $(docker ps -aq --filter label=org.pgwait.pgwaittest)
//
// The Docker engine is the one DOCKER_HOST names, or the local default
// socket; WithEndpoint picks another. When none answers, New skips its test,
// unless PGWAIT_REQUIRE_DOCKER=1, and Start returns an error matching
// ErrNoDocker.
//
// Status: this package has been compiled, vetted and unit-tested (the
// container options, scripts and connection strings it builds), but never run
// against a Docker engine: pgwait's CI has none, and there its integration
// test skips. Reports from real Docker engines are welcome.
package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	_ "github.com/pgwait/pgwait/driver" // registers "pgwait" for Open
	"github.com/pgwait/pgwait/pgwaittest/internal/dsn"
)

// DefaultImage is the image both containers run unless $PGWAIT_DOCKER_IMAGE
// or WithImage says otherwise: the official postgres image's tag for
// PostgreSQL 19, the first release with WAIT FOR LSN. Before 19.0 is out,
// its pre-releases are tagged like 19beta1 or 19rc1: set
// PGWAIT_DOCKER_IMAGE=postgres:19rc1, for example.
const DefaultImage = "postgres:19"

// ImageEnv is the environment variable that overrides DefaultImage.
const ImageEnv = "PGWAIT_DOCKER_IMAGE"

// RequireEnv is the environment variable that makes New fail, rather than
// skip, its test when no Docker engine answers: PGWAIT_REQUIRE_DOCKER=1.
const RequireEnv = "PGWAIT_REQUIRE_DOCKER"

// ErrNoDocker is matched (errors.Is) by Start's error when no Docker engine
// answers.
var ErrNoDocker = errors.New("pgwaittest/docker: no Docker engine answers")

const (
	superuser   = "postgres"
	database    = "postgres"
	replUser    = "pgwait_replicator"
	port        = "5432/tcp"
	labelKey    = "org.pgwait.pgwaittest"
	defaultWait = 3 * time.Minute
)

// An Option configures the containers or the DSN of a Pair.
type Option func(*config)

type config struct {
	image    string
	endpoint string
	timeout  time.Duration
	settings map[string]string
	params   []dsn.Param
}

// WithImage runs image (repository:tag, e.g. "postgres:19rc1" or
// "registry.example.com/postgres:19") rather than $PGWAIT_DOCKER_IMAGE or
// DefaultImage. It must be built like the official postgres image
// (docker-entrypoint.sh, $PGDATA, a postgres user) and hold PostgreSQL 19 or
// later for WAIT FOR LSN; pgwait falls back to polling on older servers.
func WithImage(image string) Option {
	return func(c *config) { c.image = image }
}

// WithEndpoint uses the Docker engine at endpoint (unix:///var/run/docker.sock,
// tcp://host:2375...) rather than $DOCKER_HOST or the local default.
func WithEndpoint(endpoint string) Option {
	return func(c *config) { c.endpoint = endpoint }
}

// WithStartTimeout bounds how long Start and New wait for the image pull and
// for both servers to be ready; the default is 3 minutes.
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithServerSetting sets a postgresql.conf parameter on both servers (as
// postgres -c name=value), e.g. WithServerSetting("max_connections", "50").
func WithServerSetting(name, value string) Option {
	return func(c *config) {
		if c.settings == nil {
			c.settings = map[string]string{}
		}
		c.settings[name] = value
	}
}

// WithParam adds key=value to the DSN that DSN returns and Open uses,
// typically one of pgwait's keys: WithParam("pgwait_wait_timeout", "100ms").
func WithParam(key, value string) Option {
	return func(c *config) { c.params = append(c.params, dsn.Param{Key: key, Value: value}) }
}

func configure(opts []Option) config {
	cfg := config{timeout: defaultWait}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// image returns the image to run: WithImage's, else $PGWAIT_DOCKER_IMAGE,
// else DefaultImage.
func (c config) imageRef() string {
	if c.image != "" {
		return c.image
	}
	if e := strings.TrimSpace(os.Getenv(ImageEnv)); e != "" {
		return e
	}
	return DefaultImage
}

// splitImage splits an image reference into repository and tag; the tag
// defaults to latest. A registry's port ("localhost:5000/postgres") is not a
// tag, and a digest ("postgres@sha256:...") stays in the repository with an
// empty tag, which dockertest cannot pull: pass a tag.
func splitImage(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") && !strings.Contains(ref, "@") {
		return ref[:i], ref[i+1:]
	}
	if strings.Contains(ref, "@") {
		return ref, ""
	}
	return ref, "latest"
}

// Pair is a running primary and replica in Docker containers. Its methods
// are safe for concurrent use.
type Pair struct {
	pool     *dockertest.Pool
	network  *dockertest.Network
	primary  *dockertest.Resource
	replica  *dockertest.Resource
	password string
	params   []dsn.Param

	primaryAddr, replicaAddr string // host:port on the Docker host

	closeOnce sync.Once
	closeErr  error
}

// New starts a Pair for test t and removes it when t and its subtests are
// done; if t failed, the containers' last log lines are logged first. It
// skips t when no Docker engine answers, unless PGWAIT_REQUIRE_DOCKER=1; any
// other failure to start fails t.
func New(t testing.TB, opts ...Option) *Pair {
	t.Helper()
	p, err := Start(t.Context(), opts...)
	if err != nil {
		if errors.Is(err, ErrNoDocker) && !required() {
			t.Skipf("%v\n(pgwaittest/docker needs a Docker engine; set %s=1 to fail instead of skipping)", err, RequireEnv)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(p.logTails())
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func required() bool {
	switch os.Getenv(RequireEnv) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// Start starts a Pair outside a test, for example in TestMain to share one
// among a package's tests. The caller must Close it. Its error matches
// ErrNoDocker when no Docker engine answers. On error nothing is left
// behind.
func Start(ctx context.Context, opts ...Option) (p *Pair, err error) {
	cfg := configure(opts)
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	pool, err := dockertest.NewPool(cfg.endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	pingCtx, pingCancel := context.WithTimeout(ctx, 10*time.Second)
	err = pool.Client.PingWithContext(pingCtx)
	pingCancel()
	if err != nil {
		return nil, fmt.Errorf("%w (endpoint %s): %v", ErrNoDocker, pool.Client.Endpoint(), err)
	}

	suffix := randomHex(6)
	p = &Pair{pool: pool, password: randomHex(16), params: cfg.params}
	defer func() {
		if err != nil {
			if tails := p.logTails(); tails != "" {
				err = fmt.Errorf("%w\n%s", err, tails)
			}
			p.Close()
			p = nil
		}
	}()

	labels := map[string]string{labelKey: suffix}
	p.network, err = pool.CreateNetwork("pgwait-"+suffix, func(o *dc.CreateNetworkOptions) {
		o.Labels = labels
		o.Context = ctx
	})
	if err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: creating the network: %w", err)
	}
	repo, tag := splitImage(cfg.imageRef())
	primaryName := "pgwait-primary-" + suffix
	replicaName := "pgwait-replica-" + suffix

	p.primary, err = pool.RunWithOptions(primaryRunOptions(repo, tag, primaryName, p.password, cfg.settings, p.network, labels), noRestart)
	if err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: starting the primary (%s:%s): %w", repo, tag, err)
	}
	host := dockerHost(pool.Client.Endpoint(), p.primary.GetBoundIP(port))
	p.primaryAddr = net.JoinHostPort(host, p.primary.GetPort(port))
	if err := p.waitReady(ctx, p.primary, p.PrimaryDSN(), false); err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: the primary: %w", err)
	}

	p.replica, err = pool.RunWithOptions(replicaRunOptions(repo, tag, replicaName, primaryName, p.password, cfg.settings, p.network, labels), noRestart)
	if err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: starting the replica: %w", err)
	}
	p.replicaAddr = net.JoinHostPort(dockerHost(pool.Client.Endpoint(), p.replica.GetBoundIP(port)), p.replica.GetPort(port))
	if err := p.waitReady(ctx, p.replica, p.ReplicaDSN(), true); err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: the replica: %w", err)
	}
	return p, nil
}

func noRestart(hc *dc.HostConfig) {
	hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
}

// serverArgs returns postgres's -c arguments: the replication essentials and
// test-friendly settings, then the caller's, sorted by name.
func serverArgs(extra map[string]string) []string {
	base := [][2]string{
		{"wal_level", "replica"},
		{"max_wal_senders", "10"},
		{"wal_keep_size", "256MB"},
		{"hot_standby", "on"},
		{"wal_receiver_status_interval", "1s"},
		{"fsync", "off"},
		{"listen_addresses", "*"},
	}
	var args []string
	for _, kv := range base {
		if _, ok := extra[kv[0]]; !ok {
			args = append(args, "-c", kv[0]+"="+kv[1])
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+extra[k])
	}
	return args
}

// primaryScript is the primary container's entrypoint (bash -c): it adds an
// initialization script that creates the replication role and lets it in
// through pg_hba.conf, then hands over to the image's docker-entrypoint.sh.
// The server's -c arguments follow it as "$@".
const primaryScript = `set -eu
cat >/docker-entrypoint-initdb.d/00-pgwait-replication.sh <<'PGWAIT_INIT'
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v repl_user="$PGWAIT_REPLICATION_USER" -v repl_password="$PGWAIT_REPLICATION_PASSWORD" <<'PGWAIT_SQL'
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';
PGWAIT_SQL
echo "host replication $PGWAIT_REPLICATION_USER all scram-sha-256" >>"$PGDATA/pg_hba.conf"
PGWAIT_INIT
exec docker-entrypoint.sh postgres "$@"
`

// replicaScript is the replica container's entrypoint (bash -c, as the
// postgres user): it waits for the primary, clones it with pg_basebackup -R
// -X stream (which writes primary_conninfo and standby.signal), then runs
// postgres as a hot standby. The server's -c arguments follow it as "$@".
const replicaScript = `set -eu
for i in $(seq 1200); do
	pg_isready -q -d "$PGWAIT_PRIMARY_CONNINFO" && break
	sleep 0.1
done
mkdir -p "$PGDATA"
chmod 0700 "$PGDATA"
pg_basebackup -d "$PGWAIT_PRIMARY_CONNINFO" -D "$PGDATA" -R -X stream -c fast --no-manifest
exec postgres -D "$PGDATA" "$@"
`

func primaryRunOptions(repo, tag, name, password string, settings map[string]string, network *dockertest.Network, labels map[string]string) *dockertest.RunOptions {
	return &dockertest.RunOptions{
		Name:       name,
		Hostname:   name,
		Repository: repo,
		Tag:        tag,
		Env: []string{
			"POSTGRES_USER=" + superuser,
			"POSTGRES_PASSWORD=" + password,
			"POSTGRES_DB=" + database,
			"PGWAIT_REPLICATION_USER=" + replUser,
			"PGWAIT_REPLICATION_PASSWORD=" + password,
		},
		Entrypoint:   []string{"bash", "-c", primaryScript, "pgwait-primary"},
		Cmd:          serverArgs(settings),
		ExposedPorts: []string{port},
		Networks:     []*dockertest.Network{network},
		Labels:       labels,
	}
}

func replicaRunOptions(repo, tag, name, primaryName, password string, settings map[string]string, network *dockertest.Network, labels map[string]string) *dockertest.RunOptions {
	return &dockertest.RunOptions{
		Name:       name,
		Hostname:   name,
		Repository: repo,
		Tag:        tag,
		User:       "postgres",
		Env: []string{
			"PGWAIT_PRIMARY_CONNINFO=" + replicationConninfo(primaryName, password, name),
		},
		Entrypoint:   []string{"bash", "-c", replicaScript, "pgwait-replica"},
		Cmd:          serverArgs(settings),
		ExposedPorts: []string{port},
		Networks:     []*dockertest.Network{network},
		Labels:       labels,
	}
}

// replicationConninfo is how the replica reaches the primary on the Docker
// network (by container name); pg_basebackup -R copies it, password
// included, into the replica's primary_conninfo.
func replicationConninfo(primaryName, password, appName string) string {
	return dsn.Build("", "",
		dsn.Param{Key: "host", Value: primaryName},
		dsn.Param{Key: "port", Value: "5432"},
		dsn.Param{Key: "user", Value: replUser},
		dsn.Param{Key: "password", Value: password},
		dsn.Param{Key: "dbname", Value: database},
		dsn.Param{Key: "application_name", Value: appName},
	)
}

// dockerHost returns the host to reach a published port at: the bound IP if
// the engine bound a specific one, else the engine's host for a TCP
// endpoint, else 127.0.0.1 (a local socket).
func dockerHost(endpoint, boundIP string) string {
	switch boundIP {
	case "", "localhost", "0.0.0.0", "::":
	default:
		return boundIP
	}
	if u, err := url.Parse(endpoint); err == nil {
		switch u.Scheme {
		case "tcp", "http", "https":
			if h := u.Hostname(); h != "" {
				return h
			}
		}
	}
	return "127.0.0.1"
}

// serverDSN is a keyword/value connection string for the superuser at addr.
func serverDSN(addr, password string) string {
	host, portNum, _ := net.SplitHostPort(addr)
	return dsn.Build("", "",
		dsn.Param{Key: "host", Value: host},
		dsn.Param{Key: "port", Value: portNum},
		dsn.Param{Key: "user", Value: superuser},
		dsn.Param{Key: "password", Value: password},
		dsn.Param{Key: "dbname", Value: database},
		dsn.Param{Key: "sslmode", Value: "disable"},
	)
}

// waitReady waits until the server at connString answers and, for the
// replica, streams from the primary; it gives up early if the container
// exits.
func (p *Pair) waitReady(ctx context.Context, r *dockertest.Resource, connString string, standby bool) error {
	var last error
	for {
		last = probe(ctx, connString, standby)
		if last == nil {
			return nil
		}
		if c, err := p.pool.Client.InspectContainerWithContext(r.Container.ID, ctx); err == nil && !c.State.Running {
			return fmt.Errorf("container %s exited (%d) before it was ready: %v", r.Container.Name, c.State.ExitCode, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w; last: %v", context.Cause(ctx), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, connString string, standby bool) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if !standby {
		_, err := conn.Exec(cctx, "SELECT 1")
		return err
	}
	var status string
	if err := conn.QueryRow(cctx, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')").Scan(&status); err != nil {
		return err
	}
	if status != "streaming" {
		return fmt.Errorf("wal receiver status %q", status)
	}
	return nil
}

// logTails returns the last lines each container logged, for errors and
// failing tests.
func (p *Pair) logTails() string {
	var b strings.Builder
	for _, r := range []*dockertest.Resource{p.primary, p.replica} {
		if r == nil {
			continue
		}
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.pool.Client.Logs(dc.LogsOptions{
			Context: ctx, Container: r.Container.ID, OutputStream: &out, ErrorStream: &out,
			Stdout: true, Stderr: true, Tail: "30",
		})
		cancel()
		if err != nil {
			fmt.Fprintf(&b, "pgwaittest/docker: %s: reading its log: %v\n", r.Container.Name, err)
			continue
		}
		fmt.Fprintf(&b, "pgwaittest/docker: %s log:\n%s\n", r.Container.Name, out.String())
	}
	return b.String()
}

// Close removes both containers, their volumes and the network. Calling it
// again does nothing and returns the first result.
func (p *Pair) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		for _, r := range []*dockertest.Resource{p.replica, p.primary} {
			if r != nil {
				if err := p.pool.Purge(r); err != nil {
					errs = append(errs, fmt.Errorf("pgwaittest/docker: removing %s: %w", r.Container.Name, err))
				}
			}
		}
		if p.network != nil {
			if err := p.network.Close(); err != nil {
				errs = append(errs, fmt.Errorf("pgwaittest/docker: removing network %s: %w", p.network.Network.Name, err))
			}
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// DSN returns the pgwait connection string for the pair, ready for
// sql.Open("pgwait", dsn): PrimaryDSN with pgwait_replicas naming the
// replica's published address (the replica inherits user, password and
// database), then the WithParam parameters.
func (p *Pair) DSN() string {
	return dsn.Build(p.PrimaryDSN(), p.replicaAddr, p.params...)
}

// PrimaryDSN returns the primary's plain keyword/value connection string
// (user and database postgres, a random password, sslmode=disable) at its
// published port.
func (p *Pair) PrimaryDSN() string { return serverDSN(p.primaryAddr, p.password) }

// ReplicaDSN returns the replica's plain connection string, in the same form
// as PrimaryDSN. The replica is read-only.
func (p *Pair) ReplicaDSN() string { return serverDSN(p.replicaAddr, p.password) }

// Open opens a pgwait *sql.DB on DSN and closes it when t is done.
func (p *Pair) Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgwait", p.DSN())
	if err != nil {
		t.Fatalf("pgwaittest/docker: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PauseReplay pauses WAL replay on the replica and returns once it reports
// it paused: pgwait's reads that must see later writes then wait, and time
// out after pgwait_wait_timeout. ResumeReplay undoes it.
func (p *Pair) PauseReplay(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.ReplicaDSN())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: pausing replay: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return fmt.Errorf("pgwaittest/docker: pausing replay: %w", err)
	}
	for {
		var state string
		if err := conn.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			return fmt.Errorf("pgwaittest/docker: pausing replay: %w", err)
		}
		if state == "paused" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgwaittest/docker: pausing replay: still %q: %w", state, context.Cause(ctx))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ResumeReplay resumes WAL replay on the replica after PauseReplay.
func (p *Pair) ResumeReplay(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.ReplicaDSN())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: resuming replay: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		return fmt.Errorf("pgwaittest/docker: resuming replay: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
