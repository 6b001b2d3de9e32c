package pgwait_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
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

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://app:hunter2@db1/app?pgwait_wait_timeout=soon", "pgwait_wait_timeout"},
		{"postgres://app:hunter2@db1/app?pgwait_wait_timeout=0", "from 1ms to"},
		{"postgres://app:hunter2@db1/app?pgwait_on_timeout=retry", "want primary or error"},
		{"postgres://app:hunter2@db1/app?pgwait_scope=global", "want handle, conn or token"},
		{"postgres://app:hunter2@db1/app?pgwait_wait_method=sleep", "want auto, wait_for_lsn or poll"},
		{"postgres://app:hunter2@db1/app?pgwait_replica=db2", `unknown setting "pgwait_replica"`},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=db2:notaport", "port"},
		{"postgres://app:hunter2@db1/app?pgwait_replicas=db2:0", "port"},
		{"postgres://app:hunter2@db1/app?default_query_exec_mode=simple_protocol", "not supported"},
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
}

func TestTokenTimeline(t *testing.T) {
	tok := new(pgwait.Token)
	assert.True(t, tok.AdvanceOn(2, 0x5000000))
	assert.Equal(t, "0/5000000@2", tok.String())
	assert.False(t, tok.AdvanceOn(1, 0x9000000), "an older timeline never moves the token")
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
			return
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
