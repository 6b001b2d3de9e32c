package docker_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaittest/docker"
)

// TestMain picks the image: $PGWAIT_DOCKER_IMAGE if set, else the local one
// scripts/postgres19-image builds (cached), so that the tests need no
// registry. Without a Docker engine the tests skip, unless
// PGWAIT_REQUIRE_DOCKER=1.
func TestMain(m *testing.M) {
	if os.Getenv(docker.ImageEnv) == "" && os.Getenv(reapChildEnv) == "" {
		image, err := buildImage()
		switch {
		case err == nil:
			os.Setenv(docker.ImageEnv, image)
		case docker.Required():
			fmt.Fprintf(os.Stderr, "pgwaittest/docker: %v\n", err)
			os.Exit(1)
		default:
			fmt.Fprintf(os.Stderr, "pgwaittest/docker: no local image (%v); the tests use %s or skip\n", err, docker.DefaultImage)
		}
	}
	os.Exit(m.Run())
}

func buildImage() (string, error) {
	script, err := filepath.Abs("../../scripts/postgres19-image")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/postgres19-image: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// TestPair: start, read-your-writes through pgwait, replay paused, replica
// stopped and restarted.
func TestPair(t *testing.T) {
	t.Parallel()
	pair := docker.New(t,
		docker.WithParam("pgwait_wait_timeout", "1s"),
		docker.WithParam("pgwait_on_timeout", "error"),
		docker.WithParam("pgwait_health_interval", "250ms"))
	db := pair.Open(t)
	ctx := t.Context()

	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	readYourWrites(t, db, 0, 50)
	// On a loaded machine a slow probe may have taken the replica out of
	// rotation for a moment: reads must come back to it.
	waitForReplicaReads(t, db)

	t.Run("replay paused", func(t *testing.T) {
		waitForReplicaReads(t, db)
		if err := pair.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (-1)"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(new(int))
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
	})

	t.Run("replica stopped and restarted", func(t *testing.T) {
		if err := pair.StopReplica(ctx); err != nil {
			t.Fatal(err)
		}
		// Reads move to the primary: still read-your-writes.
		readYourWrites(t, db, 100, 20)
		if err := pair.StartReplica(ctx); err != nil {
			t.Fatal(err)
		}
		readYourWrites(t, db, 200, 20)
		waitForReplicaReads(t, db)
	})

	st, err := driver.StatsOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", st)
}

// readYourWrites inserts ids from to from+n-1 into t, reading each back at
// once.
func readYourWrites(t *testing.T, db *sql.DB, from, n int) {
	t.Helper()
	ctx := t.Context()
	for i := from; i < from+n; i++ {
		if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		var c int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE id = $1", i).Scan(&c); err != nil || c != 1 {
			t.Fatalf("read %d after its write: count %d, %v", i, c, err)
		}
	}
}

// waitForReplicaReads waits until pgwait sends reads to the replica again.
func waitForReplicaReads(t *testing.T, db *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var inRecovery bool
		err := db.QueryRowContext(t.Context(), "SELECT pg_is_in_recovery()").Scan(&inRecovery)
		if err == nil && inRecovery {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads did not come back to the replica in 30s: %v, %v", inRecovery, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPromote: once the replica is promoted, it no longer replays the
// primary's writes, and pgwait must stop reading from it.
func TestPromote(t *testing.T) {
	t.Parallel()
	pair := docker.New(t,
		docker.WithParam("pgwait_wait_timeout", "300ms"),
		docker.WithParam("pgwait_health_interval", "250ms"))
	db := pair.Open(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	readYourWrites(t, db, 0, 20)
	if err := pair.PromoteReplica(ctx); err != nil {
		t.Fatal(err)
	}
	// Every read sees its write, whether pgwait noticed the promotion yet or
	// not (the promoted server no longer replays, so a read there would
	// wait and time out, then go to the primary).
	readYourWrites(t, db, 100, 50)
	var inRecovery bool
	if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Errorf("after the promotion a read still went to a server in recovery (%v) or failed: %v", inRecovery, err)
	}
	st, err := driver.StatsOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", st)
}

// TestMinimalImage runs a pair on an image with nothing but sh, coreutils,
// PostgreSQL 19 and a postgres user (no entrypoint, no bash), which is all
// the package says it needs.
func TestMinimalImage(t *testing.T) {
	t.Parallel()
	image := os.Getenv(docker.ImageEnv)
	if !strings.HasPrefix(image, "pgwait-local/") {
		if docker.Required() {
			t.Fatalf("%s=%q: the minimal image is built beside pgwait-local/ images only", docker.ImageEnv, image)
		}
		t.Skipf("%s=%q is not a pgwait-local/ image, which scripts/postgres19-image builds with a -minimal sibling", docker.ImageEnv, image)
	}
	pair := docker.New(t, docker.WithImage(image+"-minimal"))
	db := pair.Open(t)
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	readYourWrites(t, db, 0, 20)
}
