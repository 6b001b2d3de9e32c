// Package examples_test runs the demo, whose package has no test of its own,
// the way its documentation says: go run ./demo. The other examples are run
// by their packages' tests.
package examples_test

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgwait/pgwait/internal/pgtest"
)

func TestDemo(t *testing.T) {
	if _, err := pgtest.FindBinaries(); errors.Is(err, pgtest.ErrNoPostgres) && !pgtest.Required() {
		t.Skipf("%v\n(set PGWAIT_REQUIRE_PG=1 to fail instead of skipping)", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to run the demo with: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "run", "./demo", "-pairs", "200").CombinedOutput()
	t.Logf("go run ./demo -pairs 200:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "primary + plain replica") {
		t.Error("output lacks the naive mode's line")
	}
	if !regexp.MustCompile(`(?m)^pgwait +0/200 `).Match(out) {
		t.Error("output lacks pgwait's line with 0/200 stale reads")
	}
}
