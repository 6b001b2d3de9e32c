package pgwait_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/lsn"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		dsn   string
		check func(t *testing.T, c *pgwait.Config)
	}{
		{"defaults", "postgres://app@db1:5432/app", func(t *testing.T, c *pgwait.Config) {
			assert.Equal(t, "db1", c.Primary.Host)
			assert.Empty(t, c.Replicas)
			assert.Equal(t, pgwait.DefaultWaitTimeout, c.WaitTimeout)
			assert.Equal(t, pgwait.TimeoutPrimary, c.OnTimeout)
			assert.Equal(t, pgwait.ScopeHandle, c.Scope)
			assert.Equal(t, pgwait.WaitAuto, c.WaitMethod)
		}},
		{"replicas inherit user, database and password", "postgres://app:s3cret@db1:5432/app?pgwait_replicas=db2,db3:5433,[::1]:5434", func(t *testing.T, c *pgwait.Config) {
			require.Len(t, c.Replicas, 3)
			want := []struct {
				host string
				port uint16
			}{{"db2", 5432}, {"db3", 5433}, {"::1", 5434}}
			for i, r := range c.Replicas {
				assert.Equal(t, want[i].host, r.Host)
				assert.Equal(t, want[i].port, r.Port)
				assert.Equal(t, "app", r.User)
				assert.Equal(t, "s3cret", r.Password)
				assert.Equal(t, "app", r.Database)
			}
			_, leaked := c.Primary.RuntimeParams["pgwait_replicas"]
			assert.False(t, leaked, "pgwait's keys must not reach the server as runtime parameters")
		}},
		{"replica as a URL", "host=db1 user=app pgwait_replicas=postgres://ro@db9:6000/other", func(t *testing.T, c *pgwait.Config) {
			require.Len(t, c.Replicas, 1)
			assert.Equal(t, "db9", c.Replicas[0].Host)
			assert.Equal(t, "ro", c.Replicas[0].User)
			assert.Equal(t, "other", c.Replicas[0].Database)
		}},
		{"key=value form and policies", "host=db1 user=app pgwait_wait_timeout=250ms pgwait_on_timeout=error pgwait_scope=conn pgwait_wait_method=poll application_name=x", func(t *testing.T, c *pgwait.Config) {
			assert.Equal(t, 250*time.Millisecond, c.WaitTimeout)
			assert.Equal(t, pgwait.TimeoutFail, c.OnTimeout)
			assert.Equal(t, pgwait.ScopeConn, c.Scope)
			assert.Equal(t, pgwait.WaitPoll, c.WaitMethod)
			assert.Equal(t, "x", c.Primary.RuntimeParams["application_name"])
		}},
		{"DNS discovery", "host=db1 pgwait_replicas=replicas.db pgwait_replica_discovery=dns", func(t *testing.T, c *pgwait.Config) {
			assert.Equal(t, pgwait.DiscoveryDNS, c.Discovery)
			assert.Equal(t, "dns", c.Discovery.String())
		}},
		{"timeout in milliseconds", "host=db1 pgwait_wait_timeout=1500 pgwait_scope=token pgwait_wait_method=wait_for_lsn", func(t *testing.T, c *pgwait.Config) {
			assert.Equal(t, 1500*time.Millisecond, c.WaitTimeout)
			assert.Equal(t, pgwait.ScopeToken, c.Scope)
			assert.Equal(t, pgwait.WaitForLSN, c.WaitMethod)
		}},
		{"replica TLS server name follows the replica host", "postgres://app@db1/app?sslmode=verify-full&pgwait_replicas=db2", func(t *testing.T, c *pgwait.Config) {
			require.NotNil(t, c.Replicas[0].TLSConfig)
			assert.Equal(t, "db2", c.Replicas[0].TLSConfig.ServerName)
			assert.Equal(t, "db1", c.Primary.TLSConfig.ServerName)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pgwait.ParseConfig(tt.dsn)
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// TestParseConfigExecModes: every pgx query exec mode is accepted, for the
// primary and the replicas it gives its settings to, and survives a
// FormatDSN round trip.
func TestParseConfigExecModes(t *testing.T) {
	modes := map[string]pgx.QueryExecMode{
		"cache_statement": pgx.QueryExecModeCacheStatement,
		"cache_describe":  pgx.QueryExecModeCacheDescribe,
		"describe_exec":   pgx.QueryExecModeDescribeExec,
		"exec":            pgx.QueryExecModeExec,
		"simple_protocol": pgx.QueryExecModeSimpleProtocol,
	}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c, err := pgwait.ParseConfig("postgres://app:hunter2@db1/app?default_query_exec_mode=" + name + "&pgwait_replicas=db2,db3:5433")
			require.NoError(t, err)
			assert.Equal(t, mode, c.Primary.DefaultQueryExecMode)
			require.Len(t, c.Replicas, 2)
			for _, r := range c.Replicas {
				assert.Equal(t, mode, r.DefaultQueryExecMode, "a replica inherits the primary's mode")
			}
			require.NoError(t, c.Validate())
			roundTrip(t, c)
			dsn, err := c.FormatDSN()
			require.NoError(t, err)
			back, err := pgwait.ParseConfig(dsn)
			require.NoError(t, err)
			assert.Equal(t, mode, back.Primary.DefaultQueryExecMode)
		})
	}
	c, err := pgwait.ParseConfig("postgres://app@db1/app")
	require.NoError(t, err)
	c.Replicas = append(c.Replicas, c.Primary.Copy())
	c.Replicas[0].DefaultQueryExecMode = 0
	assert.ErrorContains(t, c.Validate(), "default_query_exec_mode")
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://app:hunter2@db1/app?pgwait_wait_timeout=soon", "pgwait_wait_timeout"},
		{"postgres://app:hunter2@db1/app?pgwait_wait_timeout=0", "from 1ms to"},
		{"postgres://app:hunter2@db1/app?pgwait_on_timeout=retry", "want primary or error"},
		{"host=db1 pgwait_replica_discovery=srv", "want off or dns"},
		{"postgres://app:hunter2@db1/app?pgwait_scope=global", "want handle, conn or token"},
		{"postgres://app:hunter2@db1/app?pgwait_wait_method=sleep", "want auto, wait_for_lsn or poll"},
		{"postgres://app:hunter2@db1/app?pgwait_replica=db2", `unknown setting "pgwait_replica"`},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=db2:notaport", "port"},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=db2:0", "port"},
		{"postgres://app:hunter2@db1/app?default_query_exec_mode=prepare", "default_query_exec_mode"},
		{"postgres://app:hunter2@db1:99999999/app", "primary"},
		{"host=db1 password=hunter2 port=x", "primary"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := pgwait.ParseConfig(tt.dsn)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "hunter2", "errors must not repeat the password")
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"postgres://app:pw@db1:5432/app?pgwait_replicas=db2,db3:5433",
		"host=db1 user=app password=pw pgwait_wait_timeout=250ms pgwait_scope=conn",
		"postgres://u:pw@h/d?pgwait_replicas=[::1]:5,postgres://x:pw@y/z",
		"host=a pgwait_on_timeout=error pgwait_wait_method=poll",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		c, err := pgwait.ParseConfig(dsn)
		if err != nil {
			if strings.Contains(dsn, "password=secretpw") && strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("error repeats the password: %v", err)
			}
			return
		}
		if c.WaitTimeout < time.Millisecond {
			t.Fatalf("wait timeout %v below 1ms", c.WaitTimeout)
		}
		for k := range c.Primary.RuntimeParams {
			if strings.HasPrefix(k, "pgwait_") {
				t.Fatalf("key %q leaked to the server", k)
			}
		}
		for _, r := range c.Replicas {
			if r.Host == "" || r.Port == 0 {
				t.Fatalf("replica without host or port: %+v", r)
			}
		}
	})
}

func TestToken(t *testing.T) {
	tok, err := pgwait.ParseToken("")
	require.NoError(t, err)
	assert.Equal(t, "", tok.String())
	assert.True(t, tok.Advance(0x3000060))
	assert.False(t, tok.Advance(0x3000000), "a token never moves back")
	assert.Equal(t, "0/3000060", tok.String())
	back, err := pgwait.ParseToken(tok.String())
	require.NoError(t, err)
	assert.Equal(t, tok.LSN(), back.LSN())
	_, err = pgwait.ParseToken("0/3000060'; DROP TABLE users; --")
	assert.Error(t, err)
	var nilTok *pgwait.Token
	assert.Equal(t, pgwait.LSN(0), nilTok.LSN())
	assert.Equal(t, "", nilTok.String())
	assert.False(t, nilTok.Advance(1), "a nil token does not move, and does not panic")
	assert.False(t, nilTok.AdvanceOn(2, 1))
}

func TestParseTokenErrors(t *testing.T) {
	for _, bad := range []string{"FFFFFFFF/FFFFFFFF@0", "0/1@4294967296", "0/1@18446744073709551616", " 0/1", "0/1 ", "0/1@ 2", "0/1@+2", "1/2/3", "100000000/0", strings.Repeat("9", 1000)} {
		_, err := pgwait.ParseToken(bad)
		require.Error(t, err, bad)
		assert.ErrorIs(t, err, lsn.ErrSyntax)
		assert.Contains(t, err.Error(), "pass the text Token.String returned", bad)
		assert.Less(t, len(err.Error()), 300, "errors quote at most the start of a long token")
	}
	tok, err := pgwait.ParseToken("FFFFFFFF/FFFFFFFF@4294967295")
	require.NoError(t, err)
	assert.True(t, strings.EqualFold("FFFFFFFF/FFFFFFFF@4294967295", tok.String()), tok.String())
}

func TestWaitBucketBounds(t *testing.T) {
	b := pgwait.WaitBucketBounds()
	require.NotEmpty(t, b)
	assert.True(t, slices.IsSorted(b))
	b[0] = time.Hour
	_ = append(b, time.Hour)
	assert.NotEqual(t, time.Hour, pgwait.WaitBucketBounds()[0], "the bounds cannot be changed from outside")
}

func TestTokenTimeline(t *testing.T) {
	tok := new(pgwait.Token)
	assert.True(t, tok.AdvanceOn(2, 0x5000000))
	assert.Equal(t, "0/5000000@2", tok.String())
	assert.False(t, tok.AdvanceOn(2, 0x4000000), "an earlier position on the same timeline does not move the token")
	assert.True(t, tok.AdvanceOn(1, 0x9000000), "another timeline replaces the position: the primary follows it now (a rebuilt cluster)")
	assert.Equal(t, "0/9000000@1", tok.String())
	assert.True(t, tok.AdvanceOn(3, 0x4000000), "a newer timeline replaces the position")
	l, tli := tok.Position()
	assert.Equal(t, pgwait.LSN(0x4000000), l)
	assert.EqualValues(t, 3, tli)
	assert.True(t, tok.Advance(0x4000010), "an unknown timeline keeps the token's")
	assert.Equal(t, "0/4000010@3", tok.String())

	back, err := pgwait.ParseToken("0/4000010@3")
	require.NoError(t, err)
	l, tli = back.Position()
	assert.Equal(t, pgwait.LSN(0x4000010), l)
	assert.EqualValues(t, 3, tli)
	for _, bad := range []string{"0/1@", "0/1@0", "0/1@x", "0/1@-2", "@3", "0/1@99999999999"} {
		_, err := pgwait.ParseToken(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "0/3000060", "16/B374D848@2", "1/2@", "x@1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := pgwait.ParseToken(s)
		if err != nil {
			if !errors.Is(err, lsn.ErrSyntax) || !strings.HasPrefix(err.Error(), "pgwait: token ") {
				t.Fatalf("ParseToken(%q): unclear error %v", s, err)
			}
			return
		}
		if s != strings.TrimSpace(s) {
			t.Fatalf("ParseToken(%q) accepts blanks", s)
		}
		back, err := pgwait.ParseToken(tok.String())
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", s, tok.String(), err)
		}
		l1, t1 := tok.Position()
		l2, t2 := back.Position()
		if l1 != l2 || (l1 != 0 && t1 != t2) {
			t.Fatalf("%q round trip: %v@%d vs %v@%d", s, l1, t1, l2, t2)
		}
	})
}

// describe writes out everything of c that a connection string sets, for
// comparing configs.
func describe(c *pgwait.Config) string {
	var b strings.Builder
	conn := func(cc *pgx.ConnConfig) {
		fmt.Fprintf(&b, "[%s:%d user=%q pw=%q db=%q tsa=%v timeout=%v neg=%q cb=%q proto=%s-%s krb=%q/%q exec=%v",
			cc.Host, cc.Port, cc.User, cc.Password, cc.Database, cc.ValidateConnect != nil, cc.ConnectTimeout,
			cc.SSLNegotiation, cc.ChannelBinding, cc.MinProtocolVersion, cc.MaxProtocolVersion, cc.KerberosSrvName, cc.KerberosSpn, cc.DefaultQueryExecMode)
		keys := make([]string, 0, len(cc.RuntimeParams))
		for k := range cc.RuntimeParams {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%q", k, cc.RuntimeParams[k])
		}
		tlsDesc := func(t *tls.Config) string {
			if t == nil {
				return "plain"
			}
			return fmt.Sprintf("tls(%q skip=%v verify=%v roots=%v)", t.ServerName, t.InsecureSkipVerify, t.VerifyPeerCertificate != nil, t.RootCAs != nil)
		}
		fmt.Fprintf(&b, " %s", tlsDesc(cc.TLSConfig))
		for _, f := range cc.Fallbacks {
			fmt.Fprintf(&b, " fallback(%s:%d %s)", f.Host, f.Port, tlsDesc(f.TLSConfig))
		}
		b.WriteString("]")
	}
	conn(c.Primary)
	for _, r := range c.Replicas {
		conn(r)
	}
	wait, health := c.WaitTimeout, c.HealthInterval
	if wait == 0 {
		wait = pgwait.DefaultWaitTimeout
	}
	if health == 0 {
		health = pgwait.DefaultHealthInterval
	}
	fmt.Fprintf(&b, " %v %v %v %v %v %v %v %v", wait, c.OnTimeout, c.Scope, c.WaitMethod, c.Balance, c.NoReplica, health, c.Discovery)
	return b.String()
}

// roundTrip checks that c formats to a DSN that parses back to c, whose
// String hides every password.
func roundTrip(t *testing.T, c *pgwait.Config) {
	t.Helper()
	dsn, err := c.FormatDSN()
	require.NoError(t, err)
	back, err := pgwait.ParseConfig(dsn)
	require.NoError(t, err, "FormatDSN wrote %q", dsn)
	assert.Equal(t, describe(c), describe(back), "FormatDSN wrote %q", dsn)
	again, err := back.FormatDSN()
	require.NoError(t, err)
	assert.Equal(t, dsn, again, "FormatDSN is stable")
	s := c.String()
	for _, cc := range append([]*pgx.ConnConfig{c.Primary}, c.Replicas...) {
		if cc.Password != "" {
			assert.NotContains(t, s, cc.Password, "String hides passwords")
		}
	}
}

func TestFormatDSN(t *testing.T) {
	for _, dsn := range []string{
		"postgres://app@db1:5432/app",
		"postgres://app:s3cret@db1:5432/app?pgwait_replicas=db2,db3:5433,[::1]:5434&pgwait_wait_timeout=250ms&pgwait_on_timeout=error",
		"host=db1 user=app password='it\\'s spaced out' pgwait_replicas='db2 postgres://ro:pw@r1:1,r2:2/app?sslmode=require' pgwait_scope=conn pgwait_wait_method=poll pgwait_balance=random pgwait_no_replica=error pgwait_health_interval=2s",
		"host=db1 pgwait_replicas=replicas.db:5433 pgwait_replica_discovery=dns",
		"host=/tmp port=5433 sslmode=verify-full dbname='my db' application_name='a b\\c' pgwait_replicas=127.0.0.1:5",
		"postgres://u:p%40ss@h1:1,h2:2/d?target_session_attrs=read-write&sslmode=disable&pgwait_replicas=r1%20r2:7",
		"postgres://h/d?ssl=true&pgwait_wait_timeout=" + pgwait.MaxWaitTimeout.String(),
	} {
		t.Run(dsn, func(t *testing.T) {
			c, err := pgwait.ParseConfig(dsn)
			require.NoError(t, err)
			roundTrip(t, c)
		})
	}
}

func TestFormatDSNOfBuiltConfig(t *testing.T) {
	primary, err := pgx.ParseConfig("postgres://app:pw1@db1/app?sslmode=require")
	require.NoError(t, err)
	replica, err := pgx.ParseConfig("host=db9 port=6000 user=ro password=pw2 sslmode=disable")
	require.NoError(t, err)
	short, err := pgwait.ReplicaConfig(primary, "db2:5433")
	require.NoError(t, err)
	c := &pgwait.Config{Primary: primary, Replicas: []*pgx.ConnConfig{short, replica}, WaitTimeout: 3 * time.Second, Scope: pgwait.ScopeToken}
	roundTrip(t, c)
	assert.Equal(t, "dbname=app host=db1 password=xxxxx sslmode=require user=app pgwait_replicas='db2:5433 postgres://?host=db9&password=xxxxx&port=6000&sslmode=disable&user=ro' pgwait_wait_timeout=3s pgwait_scope=token", c.String())
	c.Tracer = nil
	c.Scope = 9
	_, err = c.FormatDSN()
	assert.ErrorContains(t, err, "use the package's constants")
	assert.Contains(t, c.String(), "invalid pgwait.Config")
}

func TestCopy(t *testing.T) {
	c, err := pgwait.ParseConfig("postgres://app:pw@db1/app?sslmode=require&pgwait_replicas=db2,db3")
	require.NoError(t, err)
	d := c.Copy()
	assert.Equal(t, describe(c), describe(d))
	d.Primary.Host = "elsewhere"
	d.Primary.RuntimeParams["x"] = "y"
	d.Replicas[0].Port = 1
	d.Replicas = append(d.Replicas[:1], d.Replicas[0])
	assert.Equal(t, "db1", c.Primary.Host)
	assert.NotContains(t, c.Primary.RuntimeParams, "x")
	assert.EqualValues(t, 5432, c.Replicas[0].Port)
	assert.Equal(t, "db3", c.Replicas[1].Host)
	assert.NotSame(t, c.Replicas[0].TLSConfig, d.Replicas[0].TLSConfig)
}

// TestBounds: issue 9 item 7. A wait timeout of 24.9 days made every wait
// fail with SQLSTATE 22023; 18446744073809 ms wrapped to 99 ms; NewConnector
// took a 1 ns health interval that ParseConfig refuses, and rewrote a 0.5 ms
// wait timeout to 1 s.
func TestBounds(t *testing.T) {
	for _, v := range []string{"597h", "2151360000", "18446744073809", "99999999999999999999", "-1", "0", "500us", "1e3"} {
		_, err := pgwait.ParseConfig("host=db1 pgwait_wait_timeout=" + v)
		assert.ErrorContains(t, err, "want a duration from 1ms to 596h31m23.647s", v)
	}
	for _, v := range []string{"1ns", "9ms", "25h", "18446744073809"} {
		_, err := pgwait.ParseConfig("host=db1 pgwait_health_interval=" + v)
		assert.ErrorContains(t, err, "want a duration from 10ms to 24h0m0s", v)
	}
	c, err := pgwait.ParseConfig("host=db1 pgwait_wait_timeout=2147483647 pgwait_health_interval=24h")
	require.NoError(t, err)
	assert.Equal(t, pgwait.MaxWaitTimeout, c.WaitTimeout)
	assert.Equal(t, pgwait.MaxHealthInterval, c.HealthInterval)

	base, err := pgwait.ParseConfig("host=db1")
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		edit func(*pgwait.Config)
		want string
	}{
		{"health 1ns", func(c *pgwait.Config) { c.HealthInterval = time.Nanosecond }, "health interval 1ns: want 10ms to 24h0m0s"},
		{"health negative", func(c *pgwait.Config) { c.HealthInterval = -time.Second }, "health interval"},
		{"wait 0.5ms", func(c *pgwait.Config) { c.WaitTimeout = 500 * time.Microsecond }, "wait timeout 500µs: want 1ms to"},
		{"wait 24.9 days", func(c *pgwait.Config) { c.WaitTimeout = 597 * time.Hour }, "wait timeout 597h0m0s"},
		{"scope", func(c *pgwait.Config) { c.Scope = 3 }, "pgwait_scope is 3"},
		{"nil replica", func(c *pgwait.Config) { c.Replicas = append(c.Replicas, nil) }, "Config.Replicas[0] is nil"},
		{"no primary", func(c *pgwait.Config) { c.Primary = nil }, "no primary"},
		{"pgwait key to the server", func(c *pgwait.Config) {
			c.Primary = c.Primary.Copy()
			c.Primary.RuntimeParams["pgwait_scope"] = "conn"
		}, "would be sent to the server"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base.Copy()
			tt.edit(c)
			verr := c.Validate()
			require.Error(t, verr)
			assert.Contains(t, verr.Error(), tt.want)
			_, err := driver.NewConnector(c)
			assert.Equal(t, verr, err, "NewConnector refuses what Validate refuses, with the same error")
		})
	}
	zero := base.Copy()
	zero.WaitTimeout, zero.HealthInterval = 0, 0
	require.NoError(t, zero.Validate(), "zero means the default")
	conn, err := driver.NewConnector(zero)
	require.NoError(t, err)
	defer conn.Close()
	assert.Equal(t, pgwait.DefaultWaitTimeout, conn.Config().WaitTimeout)
	assert.Equal(t, pgwait.DefaultHealthInterval, conn.Config().HealthInterval)
}

// TestReplicaSyntax: issue 9 item 7. pgwait_replicas was split on commas,
// breaking multi-host replica URLs and sending pgwait_* keys inside a
// replica URL to the server.
func TestReplicaSyntax(t *testing.T) {
	c, err := pgwait.ParseConfig("host=db1 user=app password=pw dbname=app pgwait_replicas='db2, postgres://ro@r1:5433,r2:5434/other?sslmode=disable db3:7,[::1]:8 postgresql://r4'")
	require.NoError(t, err)
	require.Len(t, c.Replicas, 5)
	var got []string
	for _, r := range c.Replicas {
		got = append(got, pgwait.Addr(r))
	}
	assert.Equal(t, []string{"db2:5432", "r1:5433", "db3:7", "[::1]:8", "r4:5432"}, got)
	multi := c.Replicas[1]
	assert.Equal(t, "ro", multi.User)
	assert.Equal(t, "other", multi.Database)
	require.Len(t, multi.Fallbacks, 1, "the second host of the replica URL")
	assert.Equal(t, "r2", multi.Fallbacks[0].Host)
	assert.EqualValues(t, 5434, multi.Fallbacks[0].Port)
	assert.Nil(t, multi.TLSConfig)

	// The same list in a URL-form DSN, percent-encoded.
	u, err := pgwait.ParseConfig("postgres://app:pw@db1/app?pgwait_replicas=db2,%20postgres://ro@r1:5433,r2:5434/other%3Fsslmode%3Ddisable%20db3:7,[::1]:8%20postgresql://r4")
	require.NoError(t, err)
	assert.Equal(t, describe(c)[strings.Index(describe(c), "]"):], describe(u)[strings.Index(describe(u), "]"):])

	// A target_session_attrs of the primary's does not apply to replicas.
	h, err := pgwait.ParseConfig("postgres://app@p1,p2/app?target_session_attrs=read-write&pgwait_replicas=db2")
	require.NoError(t, err)
	assert.NotNil(t, h.Primary.ValidateConnect)
	assert.Nil(t, h.Replicas[0].ValidateConnect)
	for _, f := range h.Replicas[0].Fallbacks {
		assert.Equal(t, "db2", f.Host, "the primary's other hosts are no fallbacks of a replica")
	}
}

func TestParseConfigErrorsNeverShowPasswords(t *testing.T) {
	for _, tt := range []struct{ dsn, want string }{
		{"postgres://app:hunter2@db1/app?pgwait_replicas=app:hunter2@db2", "credentials (user@host) are not allowed"},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=hunter2@db2", "credentials"},
		{"host=db1 password=hunter2 pgwait_replicas='host=db2 password=hunter2'", "keyword=value settings are not allowed"},
		{"host=db1 pgwait_replicas=db2:hunter2@x", "credentials"},
		{"postgres://app:hunter2@db1:5432:x/app", "invalid port"},
		{"postgres://app:hunter2@db1/app?sslmode=bogus", "sslmode is invalid"},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=postgres://ro:hunter2@db2:99999/x", "invalid port"},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=postgres://ro:hunter2@db2/x%3Fpgwait_scope%3Dconn", `holds pgwait's setting "pgwait_scope"`},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=postgres://ro:hunter2@[db2/x", `closing "]"`},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=postgres://r1/app,db3", "put a space, not a comma"},
		{"postgres://app:hun ter2@db1/app", "holds a space"},
		{"postgres://app:hunter2%zz@db1/app", "hexadecimal"},
		{"postgres://app:hunter2@db1/app?a=b=c", "one key=value pair"},
		{"host=db1 password='hunter2", "closing quote"},
		{"host=db1 password=hunter2 oops", `lacks its "="`},
		{"host=db1 password=hunter2 target_session_attrs=nope", "target_session_attrs"},
		{"host=db1 password=hunter2 sslmode=verify-full sslrootcert=/nonexistent/hunter2", "unable to read CA file"},
		{"host=db1 password=hunter2 pgwait_replicas=db2 sslmode=verify-full sslrootcert=/nonexistent", "unable to read CA file"},
		{"host=db1 password=hunter2 pgwait_replicas=db2:0", "not a number from 1 to 65535"},
		{"host=db1 password=hunter2 pgwait_replicas=db2/x", "unexpected characters"},
		{"host=db1 password=hunter2 pgwait_replicas=db2:5:5", `"db2:5:5": want host`},
	} {
		t.Run(tt.want, func(t *testing.T) {
			_, err := pgwait.ParseConfig(tt.dsn)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if !strings.Contains(tt.want, "hunter2") {
				assert.NotContains(t, strings.ReplaceAll(err.Error(), "/nonexistent/hunter2", ""), "hunter2", "errors must not repeat the password")
			}
		})
	}
}

// FuzzFormatDSN: parse, format and parse again give the same config.
func FuzzFormatDSN(f *testing.F) {
	for _, s := range []string{
		"postgres://app:pw@db1:5432/app?pgwait_replicas=db2,db3:5433&pgwait_scope=conn",
		"host=db1 user=app password='p w' pgwait_replicas='db2 postgres://x:y@r1,r2/z?sslmode=disable' pgwait_wait_timeout=1500",
		"host=/tmp sslmode=verify-full dbname=x pgwait_replicas=[::1]:5",
		"postgres://h/d?ssl=true&application_name=%27q%27&options=-c%20x%3Dy",
		"host='a\\'b' pgwait_health_interval=1h",
		"host=db1 pgwait_replicas=replicas.svc:6432 pgwait_replica_discovery=dns",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		c, err := pgwait.ParseConfig(dsn)
		if err != nil {
			return
		}
		out, err := c.FormatDSN()
		if err != nil {
			t.Fatalf("FormatDSN of ParseConfig(%q): %v", dsn, err)
		}
		back, err := pgwait.ParseConfig(out)
		if err != nil {
			t.Fatalf("%q formats to %q, which does not parse: %v", dsn, out, err)
		}
		if d1, d2 := describe(c), describe(back); d1 != d2 {
			t.Fatalf("%q formats to %q, which parses to another config:\n%s\n%s", dsn, out, d1, d2)
		}
		if again, _ := back.FormatDSN(); again != out {
			t.Fatalf("FormatDSN unstable: %q then %q", out, again)
		}
	})
}
