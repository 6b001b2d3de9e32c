package driver_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// cluster is the primary + replica the package's tests share (nil without
// PostgreSQL 19); tests reach it through shared. Tests that stop, pause or
// promote servers start their own.
var cluster *pgtest.Cluster

// TestMain starts the shared cluster. Without PostgreSQL 19 the tests that
// need a server skip (fail, under pgtest.Required) and the others run.
func TestMain(m *testing.M) {
	flag.Parse()
	pgtest.SkipExamplesWithoutPostgres() // they cannot skip
	c, stop := pgtest.Shared(m, pgtest.Options{})
	cluster = c
	code := m.Run()
	stop()
	os.Exit(code)
}

// shared returns the shared cluster, or skips t when there is none.
func shared(t testing.TB) *pgtest.Cluster {
	t.Helper()
	return pgtest.Need(t, cluster)
}

// hostPort returns host:port of a DSN.
func hostPort(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	return net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
}

// dsnFor returns a pgwait DSN over c's primary and replicas with extra
// pgwait settings ("pgwait_wait_timeout=200ms").
func dsnFor(t testing.TB, c *pgtest.Cluster, extra ...string) string {
	t.Helper()
	dsn := c.PrimaryDSN() + " pgwait_replicas="
	for i := 0; i < c.Replicas(); i++ {
		if i > 0 {
			dsn += ","
		}
		dsn += hostPort(t, c.ReplicaDSN(i))
	}
	for _, e := range extra {
		dsn += " " + e
	}
	return dsn
}

// open opens a pgwait *sql.DB over c and closes it when the test ends.
func open(t testing.TB, c *pgtest.Cluster, extra ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgwait", dsnFor(t, c, extra...))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.Ping())
	return db
}

var tableSeq atomic.Int64

// table creates a fresh table (id bigserial, v text) on the primary, waits
// until the replica has it, and returns its name.
func table(t testing.TB, db *sql.DB) string {
	t.Helper()
	name := fmt.Sprintf("t_%s_%d", sanitize(t.Name()), tableSeq.Add(1))
	_, err := db.Exec("CREATE TABLE " + name + " (id bigserial PRIMARY KEY, v text UNIQUE, n int NOT NULL DEFAULT 0)")
	require.NoError(t, err)
	return name
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 30 {
		b = b[len(b)-30:]
	}
	return string(b)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openConfig opens a pgwait *sql.DB from a Config.
func openConfig(t testing.TB, cfg *pgwait.Config) *sql.DB {
	t.Helper()
	connector, err := pgwaitdriver.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}
