package main

import (
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/pgwait/pgwait/examples/internal/smoke"
)

func TestBindType(t *testing.T) {
	if got := sqlx.BindType("pgwait"); got != sqlx.DOLLAR {
		t.Errorf("sqlx.BindType(pgwait) = %d, want DOLLAR", got)
	}
}

func TestRun(t *testing.T) {
	out := smoke.Run(t, run)
	if want := "0/200 gets missed their user"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q", want)
	}
}
