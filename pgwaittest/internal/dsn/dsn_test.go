package dsn

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		primary, replica string
		params           []Param
		want             string
	}{
		{"host=127.0.0.1 port=5432", "127.0.0.1:5433", nil,
			"host=127.0.0.1 port=5432 pgwait_replicas=127.0.0.1:5433"},
		{" host=h ", "", []Param{{"pgwait_scope", "token"}},
			"host=h pgwait_scope=token"},
		{"host=h", "[::1]:5433", []Param{{"application_name", "my app"}, {"password", `it's\`}, {"options", ""}},
			`host=h pgwait_replicas=[::1]:5433 application_name='my app' password='it\'s\\' options=''`},
		{"", "r:1", nil, "pgwait_replicas=r:1"},
	} {
		if got := Build(tc.primary, tc.replica, tc.params...); got != tc.want {
			t.Errorf("Build(%q, %q, %v) = %q, want %q", tc.primary, tc.replica, tc.params, got, tc.want)
		}
	}
}

// The quoting must be what pgx parses back.
func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{"plain", "two words", `it's`, `back\slash`, `'\' '`, "tab\there"} {
		cfg, err := pgx.ParseConfig("host=h application_name=" + Quote(v))
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if got := cfg.RuntimeParams["application_name"]; got != v {
			t.Errorf("Quote(%q) parses back as %q", v, got)
		}
	}
}
