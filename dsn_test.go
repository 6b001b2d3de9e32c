package pgwait

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// FuzzSettingsMatchPgx: parseSettings reads a connection string as pgx
// does. pgx.ParseConfig of the text and of the keyword=value text written
// from parseSettings' settings agree: both fail, or both give the same
// server settings.
func FuzzSettingsMatchPgx(f *testing.F) {
	for _, s := range []string{
		"postgres://app:pw@db1:5432,db2:5433/app?sslmode=disable&application_name=x",
		"postgresql://[::1]:5/d?ssl=true",
		"postgres://u@h/d?ssl=true&sslmode=disable",
		"postgres://h1,h2/d?port=1,2",
		"host=db1 user=app password='a \\' b' dbname=x port=5",
		"host=a\\ b user= x=y",
		"postgres://%41@h/%64?options=-c%20a%3Db",
		"host=a port=1,2",
		"postgres:// h /d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		want, wantErr := pgx.ParseConfig(dsn)
		s, err := parseSettings(dsn)
		if err == nil {
			err = s.check()
		}
		if err != nil {
			if wantErr == nil && !badKeys(want) {
				t.Fatalf("pgx parses %q, parseSettings does not: %v", dsn, err)
			}
			return
		}
		got, gotErr := pgx.ParseConfig(s.keywordValue(false))
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: pgx says %v, but %v for %q", dsn, wantErr, gotErr, s.keywordValue(false))
		}
		if gotErr != nil {
			return
		}
		if want.User == "" {
			// An empty user name in a URL (postgres://:pw@h, ?user=)
			// is kept by pgx; parseSettings drops it, as keyword=value
			// text does, and the OS user name is used. Neither connects.
			return
		}
		if a, b := connDesc(want), connDesc(got); a != b {
			t.Fatalf("%q parses to\n%s\nbut %q to\n%s", dsn, a, s.keywordValue(false), b)
		}
		if again, err := parseSettings(s.keywordValue(false)); err != nil || !again.equal(s) {
			t.Fatalf("%q: keyword=value text %q reads back as %v (%v), not %v", dsn, s.keywordValue(false), again, err, s)
		}
		if again, err := parseSettings(s.url(false)); err != nil || !again.equal(s) {
			t.Fatalf("%q: URL %q reads back as %v (%v), not %v", dsn, s.url(false), again, err, s)
		}
	})
}

// badKeys reports runtime parameters that keyword=value text cannot carry
// (and PostgreSQL does not have).
func badKeys(cc *pgx.ConnConfig) bool {
	for k := range cc.RuntimeParams {
		if k == "" || strings.ContainsAny(k, spaces+`='\`) {
			return true
		}
	}
	return false
}

func connDesc(cc *pgx.ConnConfig) string {
	s := settings{"host": cc.Host, "user": cc.User, "password": cc.Password, "database": cc.Database,
		"tls": tlsDesc(cc), "proto": cc.MinProtocolVersion + cc.MaxProtocolVersion, "cb": cc.ChannelBinding}
	for k, v := range cc.RuntimeParams {
		s["rt:"+k] = v
	}
	out := s.keywordValue(false)
	for _, f := range cc.Fallbacks {
		out += " | " + f.Host + " " + strings.Repeat("t", btoi(f.TLSConfig != nil))
	}
	return out + " port=" + string(rune('0'+cc.Port%10))
}

func tlsDesc(cc *pgx.ConnConfig) string {
	if cc.TLSConfig == nil {
		return "none"
	}
	return cc.TLSConfig.ServerName + strings.Repeat("!", btoi(cc.TLSConfig.InsecureSkipVerify))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzParseConfigSecrets places a password everywhere a connection string
// can carry one, primary and replicas, around fuzzed text: no error may
// repeat it.
func FuzzParseConfigSecrets(f *testing.F) {
	const pw = "Zq8secretPW"
	for _, s := range [][3]string{
		{"postgres://app:", "@db1:5432/app?pgwait_replicas=db2", ""},
		{"host=db1 password=", " port=x", ""},
		{"postgres://:", "0", ""},
		{"host=db1 target_session_attrs=", "", ""},
		{"postgres://app:", "@db1/app?pgwait_replicas=postgres://ro:", "@db2:99999/x"},
		{"host=db1 pgwait_replicas='app:", "@db2'", ""},
		{"host=db1 pgwait_replicas='postgres://ro@db2/x?password=", "&sslmode=bogus'", ""},
		{"postgres://app:", "@db1:5432:x/app", ""},
		{"host=db1 sslpassword=", " sslcert=/nonexistent sslkey=/nonexistent", ""},
		{"postgres://u:", "@[::1/x", ""},
		{"host=db1 password='", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, s := range []string{a, b, c} {
			if strings.Contains(s, pw[:4]) {
				return
			}
		}
		dsn := a + pw + b + c
		_, err := ParseConfig(dsn)
		if err == nil || !strings.Contains(err.Error(), pw) {
			return
		}
		// pgwait quotes its own settings' values and names, and pgx some
		// values (target_session_attrs=...): a password is only one where
		// a parse finds it, as a password, sslpassword or URL userinfo.
		if s, perr := parseSettings(dsn); perr == nil {
			secrets := s.secrets()
			for _, item := range splitReplicas(s[keyReplicas]) {
				if r, perr := parseSettings(item); perr == nil && isURL(item) {
					secrets = append(secrets, r.secrets()...)
				}
			}
			if !slices.ContainsFunc(secrets, func(v string) bool { return strings.Contains(v, pw) }) {
				return
			}
		}
		{
			t.Fatalf("ParseConfig(%q) error repeats the password: %v", dsn, err)
		}
	})
}
