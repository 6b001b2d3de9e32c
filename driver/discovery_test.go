package driver_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// dnsAnswer is a pgwait.Resolver whose one answer, for every name, tests
// change at run time.
type dnsAnswer struct{ addrs atomic.Pointer[[]string] }

func (d *dnsAnswer) set(addrs ...string) { d.addrs.Store(&addrs) }

func (d *dnsAnswer) LookupHost(context.Context, string) ([]string, error) {
	return slices.Clone(*d.addrs.Load()), nil
}

// portCounter counts, per server port, the reads that servers answered.
type portCounter struct {
	mu    sync.Mutex
	ports map[string]int
}

func (p *portCounter) add(port string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ports[port]++
}

func (p *portCounter) get(port string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ports[port]
}

func (p *portCounter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ports = map[string]int{}
}

// TestDiscoveryFollowsTheDNSAnswer: a replica given by host name under
// pgwait_replica_discovery=dns is every address its name resolves to, on
// real servers, while reads and writes run: an address that appears enters
// the rotation and serves reads, one that vanishes is drained (no read
// fails, reads keep seeing their writes) and left with no connection.
// The answers carry each replica's port (the servers share 127.0.0.1), as
// a resolver reading SRV records would.
func TestDiscoveryFollowsTheDNSAnswer(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Replicas: 2})
	ctx := ctxT(t)
	a, b := hostPort(t, c.ReplicaDSN(0)), hostPort(t, c.ReplicaDSN(1))
	portA, portB := portOf(t, c.ReplicaDSN(0)), portOf(t, c.ReplicaDSN(1))
	const app = "pgwait-discovery-test"
	cfg, err := pgwait.ParseConfig(c.PrimaryDSN() + " application_name=" + app +
		" pgwait_replicas=replicas.test:5432 pgwait_replica_discovery=dns pgwait_balance=round_robin pgwait_health_interval=50ms")
	require.NoError(t, err)
	dns := &dnsAnswer{}
	dns.set(a)
	cfg.Resolver = dns
	db := openConfig(t, cfg)
	db.SetMaxOpenConns(4)
	db.SetConnMaxLifetime(200 * time.Millisecond) // pooled connections are reused, and renewed
	connector, err := pgwaitdriver.ConnectorOf(ctx, db)
	require.NoError(t, err)
	tbl := table(t, db)

	served := &portCounter{ports: map[string]int{}}
	var failed atomic.Int64
	// removedAt is when A was seen gone from the set (unix nanoseconds, 0
	// before); lateA counts the reads A served that began after it.
	var removedAt, lateA atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var p int
				began := time.Now().UnixNano()
				if err := db.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&p); err != nil {
					t.Errorf("read failed: %v", err)
					failed.Add(1)
					continue
				}
				served.add(fmt.Sprint(p))
				if at := removedAt.Load(); at != 0 && began > at && fmt.Sprint(p) == portA {
					lateA.Add(1)
				}
			}
		})
	}
	wg.Go(func() { // a writer reading its writes back, through every change
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprint("w", i)
			var n int
			if _, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1)", v); err != nil {
				t.Errorf("write failed: %v", err)
				failed.Add(1)
			} else if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl+" WHERE v = $1", v).Scan(&n); err != nil || n != 1 {
				t.Errorf("read of write %d: n=%d err=%v", i, n, err)
				failed.Add(1)
			}
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	replicas := func() []string {
		var out []string
		for _, st := range connector.Replicas() {
			out = append(out, st.Addr+" "+st.Name)
		}
		return out
	}
	const name = " replicas.test:5432"
	require.Eventually(t, func() bool { return served.get(portA) > 0 }, 10*time.Second, 10*time.Millisecond, "the name's one address serves reads")
	assert.Equal(t, []string{a + name}, replicas())

	dns.set(a, b)
	require.Eventually(t, func() bool { return served.get(portB) > 0 }, 10*time.Second, 10*time.Millisecond, "the address that appeared serves reads")
	assert.ElementsMatch(t, []string{a + name, b + name}, replicas())

	dns.set(b)
	require.Eventually(t, func() bool { return slices.Equal(replicas(), []string{b + name}) }, 10*time.Second, 10*time.Millisecond, "the address that vanished leaves the set")
	removedAt.Store(time.Now().UnixNano())
	served.reset()
	require.Eventually(t, func() bool { return served.get(portB) > 100 }, 10*time.Second, 10*time.Millisecond)
	assert.Zero(t, lateA.Load(), "a removed replica served a read that began after its removal")

	close(stop)
	wg.Wait()
	assert.Zero(t, failed.Load(), "reads or writes failed while the set changed")
	st := stats(t, db)
	assert.Zero(t, st.ReplicaErrors)

	// Drained: no connection of the handle, probe or pooled, is left on it.
	require.Eventually(t, func() bool {
		n, err := pgtest.QueryString(ctx, c.ReplicaDSN(0), "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", app+"%")
		return err == nil && n == "0"
	}, 10*time.Second, 50*time.Millisecond, "connections to the removed replica were left open")
	require.Eventually(t, func() bool {
		n, err := pgtest.QueryString(ctx, c.ReplicaDSN(1), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app+" (pgwait probe)")
		return err == nil && n == "1"
	}, 10*time.Second, 50*time.Millisecond, "the remaining replica is still probed, over one connection")
}

// TestDiscoveryWithTheSystemResolver: without Config.Resolver the system's
// resolver answers, and each address takes the port given with the name:
// localhost:PORT gives the replica at 127.0.0.1:PORT (and, where localhost
// also resolves to ::1, a replica there, which the server, listening on
// 127.0.0.1 only, does not answer: it stays out of the rotation).
func TestDiscoveryWithTheSystemResolver(t *testing.T) {
	c := shared(t)
	ctx := ctxT(t)
	port := portOf(t, c.ReplicaDSN(0))
	db := openDSN(t, c.PrimaryDSN()+" pgwait_replicas=localhost:"+port+" pgwait_replica_discovery=dns pgwait_health_interval=50ms")
	eventuallyOnReplica(t, ctx, db)
	connector, err := pgwaitdriver.ConnectorOf(ctx, db)
	require.NoError(t, err)
	var found []string
	for _, st := range connector.Replicas() {
		assert.Equal(t, "localhost:"+port, st.Name)
		found = append(found, st.Addr)
		if st.Addr == "127.0.0.1:"+port {
			assert.Equal(t, pgwait.ReplicaInRotation, st.State)
		}
	}
	assert.Contains(t, found, "127.0.0.1:"+port)
	t.Logf("localhost resolved to %v", found)
}
