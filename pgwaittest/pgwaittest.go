// Package pgwaittest gives test suites a real PostgreSQL 19 primary and a
// streaming replica to run pgwait against, started from the PostgreSQL
// binaries on the machine in a second or two and removed afterwards.
//
//	func TestCheckout(t *testing.T) {
//		pair := pgwaittest.New(t)
//		db := pair.Open(t) // a pgwait *sql.DB: writes on the primary, reads on the replica
//		...
//	}
//
// The servers listen on 127.0.0.1 only, trust every local connection (user
// and database postgres, no password), run with fsync off, and are child
// processes of the test binary: they die with it, even when it crashes. Run
// as root, they run as the OS user postgres, created if missing.
//
// The binaries are found as follows: $PGWAIT_PG_BIN if set (it must hold
// PostgreSQL 19's postgres, initdb and pg_basebackup), else an installed
// PostgreSQL 19 (pg_config, PATH, /usr/lib/postgresql/19/bin), else, on
// Debian and Ubuntu x86_64, PostgreSQL 19 is fetched from Debian's packages
// into a per-machine cache (about 10 s, once).
//
// When no PostgreSQL 19 can be had, New skips the test with a message saying
// how to get one, unless PGWAIT_REQUIRE_PG=1 or CI is set, in which case it
// fails the test.
//
// For a suite that wants no PostgreSQL on the machine, the module
// github.com/pgwait/pgwait/pgwaittest/docker does the same with Docker
// containers.
package pgwaittest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	_ "github.com/pgwait/pgwait/driver" // registers "pgwait" for Open
	"github.com/pgwait/pgwait/internal/pgtest"
	"github.com/pgwait/pgwait/pgwaittest/internal/dsn"
)

// ErrNoPostgres is matched (errors.Is) by Start's error when no PostgreSQL 19
// binaries can be found or fetched. New skips the test on it (see the
// package documentation).
var ErrNoPostgres = pgtest.ErrNoPostgres

// startTimeout bounds New, which has no context of its own but the test's.
const startTimeout = 3 * time.Minute

// An Option configures the servers or the DSN of a Pair.
type Option func(*config)

type config struct {
	binDir   string
	settings map[string]string
	params   []dsn.Param
}

// WithBinDir runs the PostgreSQL binaries in dir (postgres, initdb,
// pg_basebackup) rather than looking for them. They should be PostgreSQL 19's:
// older servers lack WAIT FOR LSN, and pgwait falls back to polling on them.
func WithBinDir(dir string) Option {
	return func(c *config) { c.binDir = dir }
}

// WithServerSetting sets a postgresql.conf parameter on both servers, over
// the defaults, e.g. WithServerSetting("synchronous_commit", "off").
func WithServerSetting(name, value string) Option {
	return func(c *config) {
		if c.settings == nil {
			c.settings = map[string]string{}
		}
		c.settings[name] = value
	}
}

// WithParam adds key=value to the DSN that DSN returns and Open uses,
// typically one of pgwait's keys: WithParam("pgwait_wait_timeout", "100ms"),
// WithParam("pgwait_on_timeout", "error"), WithParam("pgwait_scope",
// "token"). The value is quoted as needed. A key given twice takes the last
// value.
func WithParam(key, value string) Option {
	return func(c *config) { c.params = append(c.params, dsn.Param{Key: key, Value: value}) }
}

// Pair is a running PostgreSQL 19 primary with one streaming replica. Its
// methods are safe for concurrent use.
type Pair struct {
	cluster *pgtest.Cluster
	params  []dsn.Param
}

// New starts a Pair for test t and stops it, removing its data, when t and
// its subtests are done; if t failed, the tail of each server's log is logged
// first. It skips t when no PostgreSQL 19 can be had, unless PGWAIT_REQUIRE_PG=1
// or CI is set; any other failure to start fails t.
func New(t testing.TB, opts ...Option) *Pair {
	t.Helper()
	cfg := configure(opts)
	return &Pair{cluster: pgtest.New(t, cfg.clusterOptions()), params: cfg.params}
}

// Start starts a Pair outside a test, for example in TestMain to share one
// among a package's tests, or in an example program. The caller must Close
// it. Its error matches ErrNoPostgres when no PostgreSQL 19 can be had.
func Start(ctx context.Context, opts ...Option) (*Pair, error) {
	cfg := configure(opts)
	c, err := pgtest.Start(ctx, cfg.clusterOptions())
	if err != nil {
		return nil, err
	}
	return &Pair{cluster: c, params: cfg.params}, nil
}

// Required reports whether a suite should fail rather than skip when
// PostgreSQL cannot be had: when PGWAIT_REQUIRE_PG=1 or CI is set. New
// follows it; TestMain functions that call Start can too.
func Required() bool { return pgtest.Required() }

func configure(opts []Option) config {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func (c config) clusterOptions() pgtest.Options {
	return pgtest.Options{BinDir: c.binDir, Settings: c.settings}
}

// Close stops both servers and removes their data. New's Pairs are closed
// for you; calling Close again does nothing and returns the first result.
func (p *Pair) Close() error { return p.cluster.Close() }

// DSN returns the pgwait connection string for the pair, ready for
// sql.Open("pgwait", dsn): the primary's keyword/value connection string
// with pgwait_replicas naming the replica, then the WithParam parameters. Add
// more with a space and key=value.
func (p *Pair) DSN() string {
	return dsn.Build(p.PrimaryDSN(), hostPort(p.ReplicaDSN()), p.params...)
}

// PrimaryDSN returns the primary's plain PostgreSQL connection string, in
// keyword/value form (host=127.0.0.1 port=... user=postgres dbname=postgres
// sslmode=disable), for pgx, lib/pq or psql: to set up a schema or check
// what the primary holds without pgwait in the way.
func (p *Pair) PrimaryDSN() string { return p.cluster.PrimaryDSN() }

// ReplicaDSN returns the replica's plain PostgreSQL connection string, in the
// same form as PrimaryDSN. The replica is read-only.
func (p *Pair) ReplicaDSN() string { return p.cluster.ReplicaDSN(0) }

// Open opens a pgwait *sql.DB on DSN and closes it when t is done. It fails t
// if the DSN does not parse (a bad WithParam).
func (p *Pair) Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgwait", p.DSN())
	if err != nil {
		t.Fatalf("pgwaittest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PauseReplay pauses WAL replay on the replica and returns once the replica
// reports it paused. The replica keeps receiving WAL but applies none, so
// pgwait's reads that must see later writes wait, then time out after
// pgwait_wait_timeout: use it to test how an application handles a lagging
// replica. ResumeReplay undoes it; Close does not need it.
func (p *Pair) PauseReplay(ctx context.Context) error { return p.cluster.PauseReplay(ctx, 0) }

// ResumeReplay resumes WAL replay on the replica after PauseReplay. It
// returns at once: the replica then catches up in a few milliseconds (use
// CatchUp to wait for it).
func (p *Pair) ResumeReplay(ctx context.Context) error { return p.cluster.ResumeReplay(ctx, 0) }

// CatchUp waits until the replica has replayed everything the primary had
// written when CatchUp was called, for tests that set up data through
// PrimaryDSN, without pgwait, and then read the replica directly. Reads
// through pgwait need no CatchUp. While replay is paused, CatchUp waits until
// ctx is done.
func (p *Pair) CatchUp(ctx context.Context) error {
	lsn, err := pgtest.QueryString(ctx, p.PrimaryDSN(), "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return fmt.Errorf("pgwaittest: reading the primary's WAL position: %w", err)
	}
	return p.cluster.WaitReplayed(ctx, 0, lsn)
}

// hostPort returns the host:port of a keyword/value connection string, or ""
// if it does not parse (pgtest's always do).
func hostPort(connString string) string {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}
