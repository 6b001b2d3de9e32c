package driver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
)

func TestAddrsOf(t *testing.T) {
	tests := []struct {
		name    string
		answers []string
		want    []string
	}{
		{"none", nil, nil},
		{"one IPv4", []string{"10.0.0.1"}, []string{"10.0.0.1:5432"}},
		{"IPv6 gets brackets", []string{"fd00::1"}, []string{"[fd00::1]:5432"}},
		{"sorted", []string{"10.0.0.2", "10.0.0.1"}, []string{"10.0.0.1:5432", "10.0.0.2:5432"}},
		{"repeats and blanks dropped", []string{"10.0.0.1", "", " 10.0.0.1 "}, []string{"10.0.0.1:5432"}},
		{"an answer's own port wins", []string{"10.0.0.1:6432", "[fd00::1]:6433"}, []string{"10.0.0.1:6432", "[fd00::1]:6433"}},
		{"same address, two ports", []string{"127.0.0.1:1", "127.0.0.1:2"}, []string{"127.0.0.1:1", "127.0.0.1:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, addrsOf(tt.answers, 5432))
		})
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name              string
		have, want        []string
		wantAdded, wantGo []string
	}{
		{"nothing", nil, nil, nil, nil},
		{"first answer", nil, []string{"a", "b"}, []string{"a", "b"}, nil},
		{"same", []string{"a", "b"}, []string{"a", "b"}, nil, nil},
		{"one more", []string{"a"}, []string{"a", "b"}, []string{"b"}, nil},
		{"one gone", []string{"a", "b"}, []string{"b"}, nil, []string{"a"}},
		{"replaced", []string{"a", "b"}, []string{"b", "c"}, []string{"c"}, []string{"a"}},
		{"all gone", []string{"a", "b"}, nil, nil, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			added, gone := diff(tt.have, tt.want)
			assert.Equal(t, tt.wantAdded, added)
			assert.Equal(t, tt.wantGo, gone)
		})
	}
}

func TestDiscoverable(t *testing.T) {
	tests := []struct {
		replica string
		want    bool
	}{
		{"replicas.example", true},
		{"replicas.example:6432", true},
		{"localhost", true},
		{"10.0.0.1", false},
		{"[fd00::1]:5432", false},
		{"[fe80::1%eth0]:5432", false},
		{"postgres://ro@replicas.example/app", true},
		{"postgres://ro@r1.example,r2.example/app", false},
		{"postgres://ro@r1.example:5432,r1.example:5433/app", false},
	}
	primary, err := pgx.ParseConfig("host=primary.example user=app sslmode=prefer")
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.replica, func(t *testing.T) {
			rc, err := pgwait.ReplicaConfig(primary, tt.replica)
			require.NoError(t, err)
			assert.Equal(t, tt.want, discoverable(rc))
		})
	}
	socket, err := pgx.ParseConfig("host=/var/run/postgresql")
	require.NoError(t, err)
	assert.False(t, discoverable(socket), "a Unix socket directory")
}

// fakeDNS answers each host from a map that tests change at run time.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]string
	err     error
}

func (d *fakeDNS) set(host string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.answers == nil {
		d.answers = map[string][]string{}
	}
	d.answers[host], d.err = addrs, nil
}

func (d *fakeDNS) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func (d *fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	return slices.Clone(d.answers[host]), nil
}

func addrs(st []pgwait.ReplicaStatus) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.Addr+" "+s.Name)
	}
	return out
}

// TestDiscoverFollowsTheAnswer drives discovery by hand, without servers:
// the set follows each answer, a failed lookup changes nothing, and each
// replica keeps the host name for TLS while it dials its own address.
func TestDiscoverFollowsTheAnswer(t *testing.T) {
	cfg, err := pgwait.ParseConfig("host=primary.example user=app sslmode=verify-full pgwait_replica_discovery=dns pgwait_replicas=replicas.example:5433,10.9.9.9")
	require.NoError(t, err)
	dns := &fakeDNS{}
	cfg.Resolver = dns
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	defer c.Close()
	require.Len(t, c.sources, 1, "an IP address is not resolved")
	s := c.sources[0]
	assert.True(t, c.hasReplicas())
	ctx := context.Background()
	const name = "replicas.example:5433"

	dns.set("replicas.example", "10.0.0.2", "10.0.0.1")
	c.discover(ctx, s)
	assert.Equal(t, []string{"10.9.9.9:5432 ", "10.0.0.1:5433 " + name, "10.0.0.2:5433 " + name}, addrs(c.Replicas()))
	r := s.reps["10.0.0.1:5433"]
	assert.Equal(t, "replicas.example", r.cfg.Host, "the host name stays, for TLS and the password file")
	require.NotNil(t, r.cfg.TLSConfig)
	assert.Equal(t, "replicas.example", r.cfg.TLSConfig.ServerName, "verify-full checks the name, not the address")
	got, err := r.cfg.LookupFunc(ctx, "replicas.example")
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.1:5433"}, got)

	dns.fail(errors.New("server misbehaving"))
	c.discover(ctx, s)
	assert.Len(t, c.Replicas(), 3, "a failed lookup removes nothing")
	assert.ErrorContains(t, c.Replicas()[1].LastError, "server misbehaving")

	dns.set("replicas.example", "10.0.0.2", "10.0.0.3")
	c.discover(ctx, s)
	assert.Equal(t, []string{"10.9.9.9:5432 ", "10.0.0.2:5433 " + name, "10.0.0.3:5433 " + name}, addrs(c.Replicas()))
	assert.True(t, c.replicaList()[1].removed.Load(), "10.0.0.1 is drained")

	assert.ErrorContains(t, c.RemoveReplica("10.0.0.2:5433"), "remove "+name)
	assert.ErrorContains(t, c.AddReplica("replicas.example:5433"), "in the set already")
	require.NoError(t, c.RemoveReplica(name))
	assert.Equal(t, []string{"10.9.9.9:5432 "}, addrs(c.Replicas()))
	c.discover(ctx, s)
	assert.Len(t, c.Replicas(), 1, "a removed name is not resolved again")

	require.NoError(t, c.AddReplica("replicas.example:5433"))
	require.Len(t, c.sources, 2)
	c.discover(ctx, c.sources[1])
	assert.Len(t, c.Replicas(), 3)

	// An address already in the set is not added twice; once it leaves,
	// the name's next answer brings it in.
	dns.set("replicas.example", "10.0.0.2", "10.0.0.3", "10.9.9.9:5432")
	c.discover(ctx, c.sources[1])
	assert.Len(t, c.Replicas(), 3)
	require.NoError(t, c.RemoveReplica("10.9.9.9:5432"))
	c.discover(ctx, c.sources[1])
	assert.Equal(t, []string{"10.0.0.2:5433 " + name, "10.0.0.3:5433 " + name, "10.9.9.9:5432 " + name}, addrs(c.Replicas()))
}

// TestDiscoveryOffResolvesNothing: without pgwait_replica_discovery a host
// name is one replica, as pgx connects to it.
func TestDiscoveryOffResolvesNothing(t *testing.T) {
	cfg, err := pgwait.ParseConfig("host=primary.example user=app pgwait_replicas=replicas.example")
	require.NoError(t, err)
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	defer c.Close()
	assert.Empty(t, c.sources)
	assert.Equal(t, []string{"replicas.example:5432 "}, addrs(c.Replicas()))
	require.NoError(t, c.AddReplica("other.example"))
	assert.Empty(t, c.sources)
}
