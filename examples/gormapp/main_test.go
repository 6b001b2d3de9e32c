package main

import (
	"strings"
	"testing"

	"github.com/pgwait/pgwait/examples/internal/smoke"
)

func TestRun(t *testing.T) {
	out := smoke.Run(t, run)
	if want := "0/200 finds missed their order"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q", want)
	}
}
