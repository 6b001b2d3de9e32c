package docker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaittest/docker"
)

// TestPair runs a primary and a replica in Docker: it skips, saying so, where
// no Docker engine answers (as in pgwait's CI).
func TestPair(t *testing.T) {
	pair := docker.New(t,
		docker.WithParam("pgwait_wait_timeout", "300ms"),
		docker.WithParam("pgwait_on_timeout", "error"))
	db := pair.Open(t)
	ctx := t.Context()

	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE id = $1", i).Scan(&n); err != nil || n != 1 {
			t.Fatalf("read %d after its write: count %d, %v", i, n, err)
		}
	}
	var inRecovery bool
	if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Errorf("reads did not go to the replica: %v, %v", inRecovery, err)
	}
	st, err := driver.StatsOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", st)

	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (-1)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(new(int))
	if !errors.Is(err, pgwait.ErrWaitTimeout) {
		t.Errorf("read with replay paused: %v after %v, want a wait timeout", err, time.Since(start))
	}
	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 51 {
		t.Errorf("after ResumeReplay: count %d, %v; want 51", n, err)
	}
}
