// Package docker gives test suites a PostgreSQL 19 primary and a streaming
// replica in Docker containers to run pgwait against, for machines without
// PostgreSQL 19 installed, and container-level faults to inject into them. It
// is the Docker-backed sibling of github.com/pgwait/pgwait/pgwaittest, in a
// module of its own so that only the suites that use it depend on Docker's
// client libraries (github.com/ory/dockertest/v3).
//
//	func TestCheckout(t *testing.T) {
//		pair := docker.New(t) // skips when no Docker engine answers
//		db := pair.Open(t)
//		...
//	}
//
// New and Start create, on a Docker network of their own:
//
//   - a primary, whose data directory initdb makes, with wal_level=replica,
//     password (scram-sha-256) access from anywhere and a replication role;
//   - a replica, whose data directory pg_basebackup -R -X stream makes from
//     the primary over the network, running as a hot standby that streams
//     from it;
//
// and wait until the primary accepts connections and the replica streams.
// Each publishes port 5432 on a port of the Docker host (of 127.0.0.1 for a
// local engine), which DSN, PrimaryDSN and ReplicaDSN point at, or, with
// WithNetworkAddresses, the DSNs name the containers' addresses on their
// network. Close (t.Cleanup, for New) removes both containers, their volumes
// and the network.
//
// # Images
//
// Both containers run one image: WithImage's, or $PGWAIT_DOCKER_IMAGE, or
// DefaultImage (the official postgres:19). Of the image the package needs
// only sh, PostgreSQL 19's initdb, postgres and pg_basebackup on PATH, and a
// postgres user (whose home, or else /tmp, holds the data directory): it
// runs its own commands as that user, not the image's entrypoint. Where no
// registry can be reached, pgwait's repository builds such an image from
// Debian's packages with scripts/postgres19-image (pgwait-local/postgres:19,
// which also behaves like the official image for POSTGRES_PASSWORD and the
// like, and pgwait-local/postgres:19-minimal, which has little more than the
// above: no entrypoint, no bash); set PGWAIT_DOCKER_IMAGE to it.
//
// # Faults
//
// Besides PauseReplay and ResumeReplay, a Pair injects faults at container
// level: StopReplica and StartReplica (fast shutdown, then a restart on the
// same data), PromoteReplica, DisconnectReplica and ReconnectReplica (docker
// network disconnect: with WithNetworkAddresses a partition, where packets
// to the replica go nowhere and nothing answers with a reset), FreezeReplica
// and ThawReplica (docker pause: the processes stop, the kernel still
// accepts connections), KillPrimary and StartPrimary (SIGKILL, then crash
// recovery). Pool and ContainerName give access to the containers for
// others.
//
// # Clean-up
//
// The containers and the network carry the labels org.pgwait.pgwaittest (the
// pair's ID), org.pgwait.pgwaittest.host and org.pgwait.pgwaittest.pid (the
// machine and process that started them). Close removes what carries its
// pair's ID. A test binary killed before its clean-up leaves its pair
// behind: Reap, which Start calls first, removes the pairs that processes of
// this machine started and that no longer run. To remove every pair, whoever
// started it:
//
//	docker rm -f -v $(docker ps -aq --filter label=org.pgwait.pgwaittest)
//	docker network rm $(docker network ls -q --filter label=org.pgwait.pgwaittest)
//
// The Docker engine is the one DOCKER_HOST names, or the local default
// socket; WithEndpoint picks another. When none answers, New skips its test,
// unless PGWAIT_REQUIRE_DOCKER=1, and Start returns an error matching
// ErrNoDocker.
//
// # Versions
//
// This module needs github.com/pgwait/pgwait v0.1.0, which its go.mod
// requires: the two are released together (tags v0.1.0 and
// pgwaittest/docker/v0.1.0), and a later pgwait should come with the
// pgwaittest/docker of the same version, as this package uses one of
// pgwait's internal packages. The go.mod also replaces pgwait with the copy
// beside it, for pgwait's own development: a replace applies only where the
// module is the main module, so a build that imports this package resolves
// the released v0.1.0. pgwait's CI runs its tests
// against Docker Engine 20.10 (20.10.24, API 1.41, with fuse-overlayfs
// storage and no registry), using pgwait-local/postgres:19 (PostgreSQL
// 19rc1) and pgwait-local/postgres:19-minimal.
package docker

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
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
// PGWAIT_DOCKER_IMAGE=postgres:19rc1, for example, or build a local image
// (see the package documentation).
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
	pgPort      = "5432"
	port        = dc.Port(pgPort + "/tcp")
	defaultWait = 3 * time.Minute
)

// An Option configures the containers or the DSN of a Pair.
type Option func(*config)

type config struct {
	image        string
	endpoint     string
	timeout      time.Duration
	settings     map[string]string
	params       []dsn.Param
	networkAddrs bool
}

// WithImage runs image (repository:tag, e.g. "postgres:19rc1" or
// "pgwait-local/postgres:19") rather than $PGWAIT_DOCKER_IMAGE or
// DefaultImage. See the package documentation for what it must hold.
func WithImage(image string) Option {
	return func(c *config) { c.image = image }
}

// WithEndpoint uses the Docker engine at endpoint (unix:///var/run/docker.sock,
// tcp://host:2375...) rather than $DOCKER_HOST or the local default.
func WithEndpoint(endpoint string) Option {
	return func(c *config) { c.endpoint = endpoint }
}

// WithStartTimeout bounds how long Start and New wait for the image (a pull,
// if it is not on the engine) and for both servers to be ready; the default
// is 3 minutes.
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

// WithNetworkAddresses makes DSN, PrimaryDSN and ReplicaDSN name the
// containers' addresses on the pair's Docker network rather than ports
// published on the Docker host. Those are reachable only from the Docker
// host itself (Linux) or from a container on that network, but nothing
// stands between the client and the server: a published port goes through
// the engine's proxy, which answers with a reset when the replica is
// disconnected, where a real partition leaves packets unanswered.
func WithNetworkAddresses() Option {
	return func(c *config) { c.networkAddrs = true }
}

func configure(opts []Option) config {
	cfg := config{timeout: defaultWait}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// imageRef returns the image to run: WithImage's, else $PGWAIT_DOCKER_IMAGE,
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
// empty tag.
func splitImage(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") && !strings.Contains(ref, "@") {
		return ref[:i], ref[i+1:]
	}
	if strings.Contains(ref, "@") {
		return ref, ""
	}
	return ref, "latest"
}

// Role names one of the pair's servers.
type Role int

const (
	Primary Role = iota
	Replica
)

func (r Role) String() string {
	if r == Primary {
		return "primary"
	}
	return "replica"
}

// Pair is a running primary and replica in Docker containers. Its methods
// are safe for concurrent use.
type Pair struct {
	pool     *dockertest.Pool
	cfg      config
	id       string
	password string
	network  *dc.Network
	names    [2]string // container names, by Role
	ids      [2]string // container IDs, by Role

	mu    sync.Mutex
	addrs [2]string // host:port the DSNs use, by Role

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
		if errors.Is(err, ErrNoDocker) && !Required() {
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

// Required reports whether PGWAIT_REQUIRE_DOCKER asks suites to fail rather
// than skip when no Docker engine answers. New follows it; TestMain
// functions that call Start can too.
func Required() bool {
	switch os.Getenv(RequireEnv) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// connect returns a pool for the engine, or an error matching ErrNoDocker.
func connect(ctx context.Context, endpoint string) (*dockertest.Pool, error) {
	pool, err := dockertest.NewPool(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(pingCtx); err != nil {
		return nil, fmt.Errorf("%w (endpoint %s): %v", ErrNoDocker, pool.Client.Endpoint(), err)
	}
	return pool, nil
}

// Start starts a Pair outside a test, for example in TestMain to share one
// among a package's tests. The caller must Close it. Its error matches
// ErrNoDocker when no Docker engine answers. On error nothing is left
// behind.
func Start(ctx context.Context, opts ...Option) (p *Pair, err error) {
	cfg := configure(opts)
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	pool, err := connect(ctx, cfg.endpoint)
	if err != nil {
		return nil, err
	}
	// Pairs of test binaries killed before their clean-up.
	_, _ = reap(ctx, pool)

	ref := cfg.imageRef()
	if err := ensureImage(ctx, pool, ref); err != nil {
		return nil, err
	}

	p = &Pair{pool: pool, cfg: cfg, id: randomHex(6), password: randomHex(16)}
	p.names = [2]string{"pgwait-primary-" + p.id, "pgwait-replica-" + p.id}
	// The returns below set p to nil: the clean-up keeps its own pointer.
	pair := p
	defer func() {
		if err != nil {
			if tails := pair.logTails(); tails != "" {
				err = fmt.Errorf("%w\n%s", err, tails)
			}
			if cerr := pair.Close(); cerr != nil {
				err = fmt.Errorf("%w\n%v", err, cerr)
			}
			p = nil
		}
	}()

	p.network, err = pool.Client.CreateNetwork(dc.CreateNetworkOptions{
		Name: "pgwait-" + p.id, Labels: p.labels(), Context: ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: creating the network: %w", err)
	}

	if err := p.run(ctx, Primary, ref); err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, Primary); err != nil {
		return nil, err
	}
	if err := p.createReplicationRole(ctx); err != nil {
		return nil, err
	}
	if err := p.run(ctx, Replica, ref); err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, Replica); err != nil {
		return nil, err
	}
	return p, nil
}

// ensureImage pulls ref unless the engine has it.
func ensureImage(ctx context.Context, pool *dockertest.Pool, ref string) error {
	if _, err := pool.Client.InspectImage(ref); err == nil {
		return nil
	}
	repo, tag := splitImage(ref)
	err := pool.Client.PullImage(dc.PullImageOptions{Repository: repo, Tag: tag, Context: ctx, InactivityTimeout: time.Minute}, dc.AuthConfiguration{})
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: image %s is not on the Docker engine and pulling it failed: %w\n"+
			"(without a registry, build a PostgreSQL 19 image with scripts/postgres19-image from pgwait's repository and set %s=pgwait-local/postgres:19)", ref, err, ImageEnv)
	}
	return nil
}

func (p *Pair) labels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		labelID:   p.id,
		labelHost: host,
		labelPID:  fmt.Sprint(os.Getpid()),
	}
}

// ID returns the pair's ID, the value of the label org.pgwait.pgwaittest on
// its containers and network.
func (p *Pair) ID() string { return p.id }

// Pool returns the dockertest pool the pair's containers run in.
func (p *Pair) Pool() *dockertest.Pool { return p.pool }

// ContainerName returns the name of the primary's or the replica's
// container, for docker commands or Pool().ContainerByName.
func (p *Pair) ContainerName(r Role) string { return p.names[r] }

// NetworkName returns the name of the pair's Docker network.
func (p *Pair) NetworkName() string { return p.network.Name }

// run creates and starts the container for role.
func (p *Pair) run(ctx context.Context, r Role, image string) error {
	hostIP, hostPort, err := publishAt(p.pool.Client.Endpoint())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: %w", err)
	}
	opts := p.containerOptions(r, image, hostIP, hostPort)
	opts.Context = ctx
	c, err := p.pool.Client.CreateContainer(opts)
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: creating the %s (%s): %w", r, image, err)
	}
	p.ids[r] = c.ID
	if err := p.pool.Client.StartContainerWithContext(c.ID, nil, ctx); err != nil {
		return fmt.Errorf("pgwaittest/docker: starting the %s: %w", r, err)
	}
	return p.refreshAddr(ctx, r)
}

// publishAt returns where to publish a container's port: a free port of
// 127.0.0.1 for a local engine (the same one after a restart), else any port
// the engine picks.
func publishAt(endpoint string) (hostIP, hostPort string, err error) {
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "unix" && u.Scheme != "npipe") {
		return "", "", nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", fmt.Errorf("finding a free port to publish on: %w", err)
	}
	defer l.Close()
	_, hostPort, _ = net.SplitHostPort(l.Addr().String())
	return "127.0.0.1", hostPort, nil
}

// refreshAddr reads where role's server is reached now.
func (p *Pair) refreshAddr(ctx context.Context, r Role) error {
	c, err := p.pool.Client.InspectContainerWithContext(p.ids[r], ctx)
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: inspecting the %s: %w", r, err)
	}
	var addr string
	if p.cfg.networkAddrs {
		if n, ok := c.NetworkSettings.Networks[p.network.Name]; ok && n.IPAddress != "" {
			addr = net.JoinHostPort(n.IPAddress, pgPort)
		}
	} else if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports[port] {
			if b.HostPort != "" {
				addr = net.JoinHostPort(dockerHost(p.pool.Client.Endpoint(), b.HostIP), b.HostPort)
				break
			}
		}
	}
	if addr == "" {
		return nil // disconnected or stopped: keep the last address
	}
	p.mu.Lock()
	p.addrs[r] = addr
	p.mu.Unlock()
	return nil
}

func (p *Pair) addr(r Role) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[r]
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
		dsn.Param{Key: "connect_timeout", Value: "5"},
	)
}

// createReplicationRole creates the role the replica streams as.
func (p *Pair) createReplicationRole(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.PrimaryDSN())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: creating the replication role: %w", err)
	}
	defer conn.Close(context.Background())
	sql := "CREATE ROLE " + replUser + " WITH REPLICATION LOGIN PASSWORD " + quoteLiteral(p.password)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgwaittest/docker: creating the replication role: %w", err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// waitReady waits until role's server answers and, for the replica, streams
// from the primary; it gives up early if the container exits.
func (p *Pair) waitReady(ctx context.Context, r Role) error {
	var last error
	for {
		if err := p.refreshAddr(ctx, r); err != nil {
			return err
		}
		last = probe(ctx, serverDSN(p.addr(r), p.password), r == Replica)
		if last == nil {
			return nil
		}
		if c, err := p.pool.Client.InspectContainerWithContext(p.ids[r], ctx); err == nil && !c.State.Running {
			return fmt.Errorf("pgwaittest/docker: the %s's container %s exited (%d) before it was ready: %v", r, p.names[r], c.State.ExitCode, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgwaittest/docker: the %s is not ready: %w; last: %v", r, context.Cause(ctx), last)
		case <-time.After(100 * time.Millisecond):
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

// Close removes both containers, their volumes and the network: everything
// that carries the pair's ID. Calling it again does nothing and returns the
// first result.
func (p *Pair) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.closeErr = removePairs(ctx, p.pool, []string{p.id})
	})
	return p.closeErr
}

// DSN returns the pgwait connection string for the pair, ready for
// sql.Open("pgwait", dsn): PrimaryDSN with pgwait_replicas naming the
// replica's address (the replica inherits user, password and database),
// then the WithParam parameters.
func (p *Pair) DSN() string {
	return dsn.Build(p.PrimaryDSN(), p.addr(Replica), p.cfg.params...)
}

// PrimaryDSN returns the primary's plain keyword/value connection string
// (user and database postgres, a random password, sslmode=disable,
// connect_timeout=5).
func (p *Pair) PrimaryDSN() string { return serverDSN(p.addr(Primary), p.password) }

// ReplicaDSN returns the replica's plain connection string, in the same form
// as PrimaryDSN. The replica is read-only.
func (p *Pair) ReplicaDSN() string { return serverDSN(p.addr(Replica), p.password) }

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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
