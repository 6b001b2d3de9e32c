package driver

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestCopyKind(t *testing.T) {
	for _, tc := range []struct {
		query             string
		fromStdin, stdout bool
	}{
		{"COPY t FROM STDIN", true, false},
		{"copy t (a, b) from stdin with (format csv);", true, false},
		{"COPY t TO STDOUT", false, true},
		{"COPY (SELECT 1) TO STDOUT;", false, true},
		{"COPY t FROM '/tmp/file'", false, false},
		{"SELECT 'COPY t FROM STDIN'", false, false},
		{"", false, false},
		{" \n\tCoPy t FROM stdin", true, false},
		{"\u00a0copy t to stdout", false, true},
		{"copyt FROM STDIN", false, false},
		{"copy", false, false},
		{"UPDATE t SET n = $1 WHERE id = $2", false, false},
	} {
		fromStdin, stdout := copyKind(tc.query)
		if fromStdin != tc.fromStdin || stdout != tc.stdout {
			t.Errorf("copyKind(%q) = %t, %t; want %t, %t", tc.query, fromStdin, stdout, tc.fromStdin, tc.stdout)
		}
	}
	if n := testing.AllocsPerRun(100, func() { copyKind("UPDATE t SET n = $1 WHERE id = $2") }); n != 0 {
		t.Errorf("copyKind of a statement that is not COPY allocates %v times", n)
	}
}

func TestDropsAll(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{"DISCARD ALL", true},
		{"discard all;", true},
		{"DEALLOCATE ALL", true},
		{"DEALLOCATE PREPARE ALL", true},
		{"DEALLOCATE pgwait_abc", false},
		{"DISCARD PLANS", false},
		{"DISCARD TEMP", false},
	} {
		if got := dropsAll(tc.query); got != tc.want {
			t.Errorf("dropsAll(%q) = %t, want %t", tc.query, got, tc.want)
		}
	}
}

func TestStaleStatement(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "0A000", Message: "cached plan must not change result type"}, true},
		{&pgconn.PgError{Code: "26000", Message: `prepared statement "x" does not exist`}, true},
		{&pgconn.PgError{Code: "0A000", Message: "something else not supported"}, false},
		{&pgconn.PgError{Code: "42P05"}, false},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "26000"}), true},
		{errors.New("network"), false},
		{nil, false},
	} {
		if got := staleStatement(tc.err); got != tc.want {
			t.Errorf("staleStatement(%v) = %t, want %t", tc.err, got, tc.want)
		}
	}
}
