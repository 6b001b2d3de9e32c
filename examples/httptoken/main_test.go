package main

import (
	"strings"
	"testing"

	"github.com/pgwait/pgwait/examples/internal/smoke"
)

// TestRun runs the example against a local primary and replica. The
// middleware's own tests are pgwaithttp's.
func TestRun(t *testing.T) {
	out := smoke.Run(t, run)
	for _, want := range []string{
		"token in the Pgwait-Token header:      0/",
		"token in the pgwait_token cookie:      0/",
		"no token:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
