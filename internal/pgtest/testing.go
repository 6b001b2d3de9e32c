package pgtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds New and Shared. Start-up takes a second or two; the
// first run on a fresh machine also fetches PostgreSQL 19 (about 10 s).
const startTimeout = 3 * time.Minute

// Required reports whether tests must fail, rather than skip, when
// PostgreSQL cannot be had: when PGWAIT_REQUIRE_PG is 1 (scripts/test sets
// it) or CI is set (and not "false" or "0").
func Required() bool {
	switch os.Getenv("PGWAIT_REQUIRE_PG") {
	case "1", "true", "yes":
		return true
	}
	switch os.Getenv("CI") {
	case "", "0", "false":
		return false
	}
	return true
}

// New starts a cluster for test t and closes it when t and its subtests are
// done (t.Cleanup); if t failed, the tails of the server logs are logged
// first. When the binaries cannot be had it skips t, saying how to get them,
// or fails t if Required; any other start-up failure fails t.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		if errors.Is(err, ErrNoPostgres) && !Required() {
			t.Skipf("%v\n(set PGWAIT_REQUIRE_PG=1 to fail instead of skipping)", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTails())
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// LogTails returns the last lines each server logged, for a failing test's
// output.
func (c *Cluster) LogTails() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := fmt.Sprintf("pgtest: primary (%s, port %d) log:\n%s\n", c.primary.name, c.primary.port, c.primary.logTail())
	for i, r := range c.replicas {
		s += fmt.Sprintf("pgtest: replica %d (%s, port %d) log:\n%s\n", i, r.name, r.port, r.logTail())
	}
	return s
}

var sharedSkip struct {
	sync.Mutex
	reason string
}

// Shared starts a cluster for all the tests of a package, from TestMain,
// and returns it with the function that closes it:
//
//	var cluster *pgtest.Cluster
//
//	func TestMain(m *testing.M) {
//		c, stop := pgtest.Shared(m, pgtest.Options{})
//		cluster = c
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		c := pgtest.Need(t, cluster)
//		...
//	}
//
// (os.Exit skips deferred calls: call stop before it.) Tests that damage
// their cluster (promotion, rebuilds) start their own with New instead.
//
// When the binaries cannot be had and PostgreSQL is not Required, Shared
// prints why and returns a nil cluster, and Need skips the tests that use it.
// Any other failure to start prints the error and exits the test binary
// with status 1.
func Shared(m *testing.M, opts Options) (*Cluster, func()) {
	_ = m // only a reminder of where Shared belongs
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		if errors.Is(err, ErrNoPostgres) && !Required() {
			sharedSkip.Lock()
			sharedSkip.reason = err.Error()
			sharedSkip.Unlock()
			fmt.Fprintf(os.Stderr, "pgtest: tests that need PostgreSQL will be skipped: %v\n", err)
			return nil, func() {}
		}
		fmt.Fprintf(os.Stderr, "pgtest: starting the shared cluster: %v\n", err)
		os.Exit(1)
	}
	return c, func() {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: closing the shared cluster: %v\n", err)
		}
	}
}

// Need returns c, the cluster Shared started. If Shared could not start one
// (nil c), it skips t with the reason.
func Need(t testing.TB, c *Cluster) *Cluster {
	t.Helper()
	if c == nil {
		sharedSkip.Lock()
		reason := sharedSkip.reason
		sharedSkip.Unlock()
		if reason == "" {
			t.Fatal("pgtest.Need: nil cluster: start it with pgtest.Shared in TestMain")
		}
		t.Skip(reason)
	}
	return c
}

// SkipExamplesWithoutPostgres keeps a package's runnable examples, which
// cannot skip, from failing where PostgreSQL 19 cannot be had and tests skip
// (not Required): it adds ^Example to -test.skip. Call it from TestMain,
// after flag.Parse.
func SkipExamplesWithoutPostgres() {
	if _, err := FindBinaries(); err == nil || Required() {
		return
	}
	skip := "^Example"
	if s := flag.Lookup("test.skip").Value.String(); s != "" {
		skip = s + "|" + skip
	}
	flag.Set("test.skip", skip)
	fmt.Fprintln(os.Stderr, "pgtest: no PostgreSQL 19, skipping the examples that need it")
}
