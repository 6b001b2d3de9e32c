// Package smoke runs an example's scripted scenario as a test, so that
// `go test ./...` in examples/ runs every example.
package smoke

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pgwait/pgwait/internal/pgtest"
)

// Run runs an example's run function with a 5-minute deadline, logs what it
// printed and returns it. When PostgreSQL 19 cannot be had it skips t, unless
// PGWAIT_REQUIRE_PG=1 or CI is set; then, as on any other error, it fails t.
func Run(t *testing.T, run func(ctx context.Context, out io.Writer) error) string {
	t.Helper()
	if _, err := pgtest.FindBinaries(); errors.Is(err, pgtest.ErrNoPostgres) && !pgtest.Required() {
		t.Skipf("%v\n(set PGWAIT_REQUIRE_PG=1 to fail instead of skipping)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}
