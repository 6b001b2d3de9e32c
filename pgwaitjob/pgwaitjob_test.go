package pgwaitjob_test

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
	"github.com/pgwait/pgwait/pgwaitjob"
	"github.com/pgwait/pgwait/pgwaittest"
)

func TestSaveRestore(t *testing.T) {
	tests := []struct {
		name    string
		ctx     context.Context
		want    string
		restore string
		wantErr string
	}{
		{"no token", context.Background(), "", "", ""},
		{"empty token", pgwait.WithToken(context.Background(), new(pgwait.Token)), "", "", ""},
		{"a token", pgwait.WithToken(context.Background(), pgwait.NewToken(0x3000060)), "0/3000060", "0/3000060", ""},
		{"a token on a timeline", nil, "", "16/b374d848@2", ""},
		{"too long", nil, "", strings.Repeat("1", 65), "at most 64"},
		{"garbage", nil, "", "'; --", "want an LSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ctx != nil {
				if got := pgwaitjob.Save(tt.ctx); got != tt.want {
					t.Errorf("Save = %q, want %q", got, tt.want)
				}
			}
			ctx, err := pgwaitjob.Restore(context.Background(), tt.restore)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Restore(%q) = %v, want an error with %q", tt.restore, err, tt.wantErr)
				}
				if pgwait.TokenFrom(ctx) != nil {
					t.Error("a refused token reached the context")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := pgwait.TokenFrom(ctx).String(); got != tt.restore {
				t.Errorf("restored %q, want %q", got, tt.restore)
			}
		})
	}
}

// TestReady: a worker whose replica has not replayed the job's token is told
// to retry later, without taking the replica out of the rotation, and runs
// once it has.
func TestReady(t *testing.T) {
	for _, onTimeout := range []string{"primary", "error"} {
		t.Run("on_timeout="+onTimeout, func(t *testing.T) {
			pair := pgwaittest.New(t,
				pgwaittest.WithParam("pgwait_scope", "token"),
				pgwaittest.WithParam("pgwait_on_timeout", onTimeout),
				pgwaittest.WithParam("pgwait_wait_timeout", "5s"),
				pgwaittest.WithParam("pgwait_health_interval", "50ms"))
			db := pair.Open(t)
			ctx := t.Context()
			if _, err := db.ExecContext(ctx, "CREATE TABLE jobs (id int)"); err != nil {
				t.Fatal(err)
			}
			if err := pair.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if err := pair.PauseReplay(ctx); err != nil {
				t.Fatal(err)
			}
			reqCtx := pgwait.WithToken(ctx, new(pgwait.Token))
			if _, err := db.ExecContext(reqCtx, "INSERT INTO jobs VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			payload := pgwaitjob.Save(reqCtx)

			// The worker, in another process as far as it knows.
			worker := pair.Open(t)
			wctx, err := pgwaitjob.Restore(ctx, payload)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = pgwaitjob.Ready(wctx, worker, 300*time.Millisecond)
			if !errors.Is(err, pgwaitjob.ErrRetryLater) {
				t.Fatalf("Ready with replay paused = %v, want ErrRetryLater", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Ready took %v, want about its 300ms bound", took)
			}
			st, err := driver.StatsOf(ctx, worker)
			if err != nil {
				t.Fatal(err)
			}
			if st.Ejections != 0 {
				t.Errorf("a bounded check ejected the replica (%d ejections)", st.Ejections)
			}

			if err := pair.ResumeReplay(ctx); err != nil {
				t.Fatal(err)
			}
			if err := pgwaitjob.Ready(wctx, worker, 5*time.Second); err != nil {
				t.Fatalf("Ready after replay resumed = %v, want nil", err)
			}
			var n int
			if err := worker.QueryRowContext(wctx, "SELECT count(*) FROM jobs").Scan(&n); err != nil || n != 1 {
				t.Fatalf("the worker read %d jobs (%v), want 1", n, err)
			}
		})
	}
}

func TestReadyFailsOnABrokenHandle(t *testing.T) {
	db, err := sql.Open("pgwait", "host=127.0.0.1 port=1 connect_timeout=1 pgwait_replicas=127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = pgwaitjob.Ready(t.Context(), db, 5*time.Second)
	if err == nil || errors.Is(err, pgwaitjob.ErrRetryLater) {
		t.Fatalf("Ready on an unreachable primary = %v, want an error that is not ErrRetryLater", err)
	}
}

// TestMain keeps the runnable examples, which cannot skip, from failing on a
// machine without PostgreSQL 19, where the tests skip.
func TestMain(m *testing.M) {
	flag.Parse()
	pgtest.SkipExamplesWithoutPostgres()
	os.Exit(m.Run())
}
