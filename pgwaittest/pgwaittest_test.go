package pgwaittest_test

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
	"github.com/pgwait/pgwait/pgwaittest"
)

// TestMain keeps the runnable examples, which cannot skip, from failing on a
// machine without PostgreSQL 19 where the tests skip.
func TestMain(m *testing.M) {
	flag.Parse()
	pgtest.SkipExamplesWithoutPostgres()
	os.Exit(m.Run())
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustExec(t *testing.T, ctx context.Context, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestReadYourWrites(t *testing.T) {
	pair := pgwaittest.New(t)
	db := pair.Open(t)
	ctx := ctxFor(t, time.Minute)

	mustExec(t, ctx, db, "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)")
	const n = 100
	for i := range n {
		mustExec(t, ctx, db, "INSERT INTO t VALUES ($1, $2)", i, "v"+strconv.Itoa(i))
		var v string
		if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id = $1", i).Scan(&v); err != nil {
			t.Fatalf("reading row %d right after writing it: %v", i, err)
		}
	}
	st, err := driver.StatsOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if st.ReplicaReads < n {
		t.Errorf("%d of %d reads went to the replica; stats %+v", st.ReplicaReads, n, st)
	}
}

func TestDSN(t *testing.T) {
	pair := pgwaittest.New(t,
		pgwaittest.WithParam("pgwait_wait_timeout", "5s"),
		pgwaittest.WithParam("pgwait_wait_timeout", "250ms"), // the last one counts
		pgwaittest.WithParam("application_name", "pgwaittest's test"),
		pgwaittest.WithServerSetting("max_connections", "42"),
	)
	cfg, err := pgwait.ParseConfig(pair.DSN())
	if err != nil {
		t.Fatalf("ParseConfig(%q): %v", pair.DSN(), err)
	}
	primary, err := pgx.ParseConfig(pair.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	replica, err := pgx.ParseConfig(pair.ReplicaDSN())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pgwait.Addr(cfg.Primary), pgwait.Addr(primary); got != want {
		t.Errorf("DSN's primary is %s, PrimaryDSN's %s", got, want)
	}
	if len(cfg.Replicas) != 1 || pgwait.Addr(cfg.Replicas[0]) != pgwait.Addr(replica) {
		t.Errorf("DSN's replicas are %v, want one: %s", cfg.Replicas, pgwait.Addr(replica))
	}
	if primary.Port == replica.Port {
		t.Errorf("primary and replica share port %d", primary.Port)
	}
	if cfg.WaitTimeout != 250*time.Millisecond {
		t.Errorf("wait timeout %v, want the last WithParam's 250ms", cfg.WaitTimeout)
	}

	ctx := ctxFor(t, time.Minute)
	db := pair.Open(t)
	var app, maxConn string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('application_name'), current_setting('max_connections')").Scan(&app, &maxConn); err != nil {
		t.Fatal(err)
	}
	if app != "pgwaittest's test" || maxConn != "42" {
		t.Errorf("application_name %q, max_connections %s; want the options' values", app, maxConn)
	}
	var inRecovery bool
	if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		t.Fatal(err)
	}
	if !inRecovery {
		t.Error("a read through the DSN ran on the primary, not the replica")
	}
}

// TestPauseReplay is what a user's test of its timeout handling looks like.
func TestPauseReplay(t *testing.T) {
	pair := pgwaittest.New(t,
		pgwaittest.WithParam("pgwait_wait_timeout", "200ms"),
		pgwaittest.WithParam("pgwait_on_timeout", "error"))
	db := pair.Open(t)
	ctx := ctxFor(t, time.Minute)
	mustExec(t, ctx, db, "CREATE TABLE t (id int PRIMARY KEY)")
	if err := pair.CatchUp(ctx); err != nil { // for the plain reads of the replica below
		t.Fatal(err)
	}
	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, ctx, db, "INSERT INTO t VALUES (1)")
	var n int
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
	var wte *pgwait.WaitTimeoutError
	if !errors.As(err, &wte) || !errors.Is(err, pgwait.ErrWaitTimeout) {
		t.Fatalf("read with replay paused: got %v (n=%d), want a *pgwait.WaitTimeoutError", err, n)
	}
	if wte.Timeout != 200*time.Millisecond {
		t.Errorf("timed out after %v, want 200ms", wte.Timeout)
	}
	// The replica itself has not seen the insert.
	plain, err := sql.Open("pgwait", pair.ReplicaDSN()) // no replicas: a plain connection
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
		t.Errorf("paused replica: count %d, %v; want 0 rows", n, err)
	}

	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after ResumeReplay: count %d, %v; want 1", n, err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := plain.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Errorf("replica after CatchUp: count %d, %v; want 1", n, err)
	}
}

func TestCatchUpTimesOutWhilePaused(t *testing.T) {
	pair := pgwaittest.New(t)
	ctx := ctxFor(t, time.Minute)
	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Exec(ctx, pair.PrimaryDSN(), "CREATE TABLE t ()"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := pair.CatchUp(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CatchUp with replay paused: %v, want the context's deadline", err)
	}
	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Error(err)
	}
}

func TestStartClose(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	pair, err := pgwaittest.Start(ctx)
	if errors.Is(err, pgwaittest.ErrNoPostgres) && !pgwaittest.Required() {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dsn := pair.PrimaryDSN()
	if err := pgtest.Exec(ctx, dsn, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := pair.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pair.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := pgtest.Exec(ctx, dsn, "SELECT 1"); err == nil {
		t.Error("the primary still answers after Close")
	}
}
