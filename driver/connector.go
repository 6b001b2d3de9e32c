// Package driver is pgwait's database/sql driver. Importing it registers the
// driver name "pgwait":
//
//	import _ "github.com/pgwait/pgwait/driver"
//
//	db, err := sql.Open("pgwait", "postgres://app@primary:5432/app?pgwait_replicas=replica1:5432")
//
// or, from a *pgwait.Config, sql.OpenDB(driver.NewConnector(cfg)).
//
// Each database/sql connection holds up to one server connection to the
// primary and one to each replica it reads from, each opened on first use
// through pgx stdlib (with replicas, a connection that only reads never
// opens one to the primary).
// The underlying *pgx.Conn of each is reachable through sql.Conn.Raw and
// (*Conn).Primary / (*Conn).Replica.
package driver

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/tracker"
)

// Name is the name the driver registers with database/sql.
const Name = "pgwait"

func init() {
	sql.Register(Name, Driver{})
}

// Driver is the database/sql driver. sql.Open("pgwait", dsn) uses it; dsn is
// what pgwait.ParseConfig reads.
type Driver struct{}

// Open opens one connection over a connector of its own, which the
// connection closes (with its replica probes) when it is closed.
// database/sql calls OpenConnector instead, once per sql.DB.
func (d Driver) Open(dsn string) (sqldriver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	connector := c.(*Connector)
	conn, err := connector.Connect(context.Background())
	if err != nil {
		connector.Close()
		return nil, err
	}
	conn.(*Conn).ownsConnector = true
	return conn, nil
}

// OpenConnector parses dsn once per sql.DB.
func (Driver) OpenConnector(dsn string) (sqldriver.Connector, error) {
	cfg, err := pgwait.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnector(cfg)
}

// Connector opens pgwait connections that share one consistency state (a
// tracker.Tracker: the handle's positions, what each replica is known to
// have replayed and whether it is in rotation, which primary the positions
// belong to). Use one Connector per sql.DB; sql.DB.Close closes it.
type Connector struct {
	cfg     pgwait.Config
	primary sqldriver.Connector
	// reps is the replica set, append-only (a removed replica stays, marked,
	// so that indexes, shared with the tracker, never change); repMu
	// serializes additions and removals.
	reps  atomic.Pointer[[]*replica]
	repMu sync.Mutex
	// sources are the replicas given by host name under DNS discovery
	// (discovery.go), under repMu; named counts those not removed.
	sources []*source
	named   atomic.Int32
	track   *tracker.Tracker
	stats   counters
	health  healthChecker
}

// replica is one replica's connection settings; what is known of its state
// lives in the tracker, under the replica's index.
type replica struct {
	index int
	addr  string
	// name is the source's host:port for a replica DNS discovery found,
	// empty for any other.
	name      string
	cfg       *pgx.ConnConfig
	connector sqldriver.Connector
	// plain connects without the startup parameters pgwait adds, for a
	// pooler in front of the replica that refuses them (PgBouncer refuses
	// those it does not know); pooled is set once one did.
	plain  sqldriver.Connector
	pooled atomic.Bool
	// removed is set when the replica leaves the set (RemoveReplica).
	removed atomic.Bool
	// alive is when a probe of it last succeeded (unix nanoseconds).
	alive  atomic.Int64
	status replicaStatus // counts and last error, for Replicas (status.go)
}

// maxBackoff bounds the backoff of a replica whose probes keep failing:
// they double the wait before the next one from the health interval up to
// ten health intervals (from 1 s to 30 s), so that a replica back from a
// crash is found again soon.
func maxBackoff(interval time.Duration) time.Duration {
	return min(max(10*interval, time.Second), 30*time.Second)
}

// NewConnector returns a connector for cfg, for sql.OpenDB. It refuses a
// config that cfg.Validate refuses, with the same error; a zero WaitTimeout
// or HealthInterval means the default.
func NewConnector(cfg *pgwait.Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Connector{cfg: *cfg}
	if c.cfg.WaitTimeout == 0 {
		c.cfg.WaitTimeout = pgwait.DefaultWaitTimeout
	}
	if c.cfg.HealthInterval == 0 {
		c.cfg.HealthInterval = pgwait.DefaultHealthInterval
	}
	if c.cfg.ReplicaTimeout == 0 {
		c.cfg.ReplicaTimeout = pgwait.DefaultReplicaTimeout
	}
	c.primary = stdlib.GetConnector(*cfg.Primary.Copy())
	var reps []*replica
	for _, rc := range cfg.Replicas {
		if c.cfg.Discovery == pgwait.DiscoveryDNS && discoverable(rc) {
			c.sources = append(c.sources, newSource(rc.Copy()))
			c.named.Add(1)
			continue
		}
		reps = append(reps, c.newReplica(len(reps), rc))
	}
	c.reps.Store(&reps)
	c.track = tracker.New(tracker.Config{
		Scope:          c.cfg.Scope,
		Balance:        c.cfg.Balance,
		Replicas:       len(reps),
		HealthInterval: c.cfg.HealthInterval,
		MaxBackoff:     maxBackoff(c.cfg.HealthInterval),
		MaxLag:         c.cfg.MaxReplicaLag,
	})
	c.health.init(c)
	return c, nil
}

// Connect returns a connection. Without replicas its primary connection is
// opened now, so that a wrong DSN or a down primary fails here, as with pgx
// stdlib. With replicas every server connection opens on first use: a
// connection that only reads never dials the primary, and reads go on while
// the primary is down (db.Ping checks the primary).
func (c *Connector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	c.health.start()
	conn := &Conn{c: c, session: c.track.NewSession()}
	if !c.hasReplicas() {
		if _, err := conn.primarySide(ctx); err != nil {
			return nil, err
		}
	}
	return conn, nil
}

// newReplica prepares replica i's connection settings.
func (c *Connector) newReplica(i int, rc *pgx.ConnConfig) *replica {
	rc = rc.Copy()
	// A replica that does not answer a connection attempt is sick.
	if rc.ConnectTimeout == 0 || rc.ConnectTimeout > c.cfg.ReplicaTimeout {
		rc.ConnectTimeout = c.cfg.ReplicaTimeout
	}
	plain := rc.Copy()
	// A wait abandoned by a client that went away must not linger on the
	// replica: have the server check the client while it waits.
	if _, ok := rc.RuntimeParams["client_connection_check_interval"]; !ok {
		rc.RuntimeParams["client_connection_check_interval"] = "1000"
	}
	return &replica{index: i, addr: pgwait.Addr(rc), cfg: rc, connector: stdlib.GetConnector(*rc), plain: stdlib.GetConnector(*plain)}
}

// connect opens a connection to the replica: with the startup parameters
// pgwait adds, unless a pooler in front of it refused them once, in which
// case without (and from then on).
func (r *replica) connect(ctx context.Context) (sqldriver.Conn, error) {
	if !r.pooled.Load() {
		dc, err := r.connector.Connect(ctx)
		if err == nil || !isUnsupportedParameter(err) {
			return dc, err
		}
		r.pooled.Store(true)
	}
	return r.plain.Connect(ctx)
}

// isUnsupportedParameter reports a pooler refusing a startup parameter
// (PgBouncer: "unsupported startup parameter: ...").
func isUnsupportedParameter(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Message, "unsupported startup parameter")
}

// replicaList returns the replica set, removed replicas included (their
// index is their place in it).
func (c *Connector) replicaList() []*replica { return *c.reps.Load() }

// hasReplicas reports whether the set has a replica not removed, or a host
// name DNS discovery follows (whose replicas may be yet to be found).
func (c *Connector) hasReplicas() bool { return c.named.Load() > 0 || c.liveReplicas() > 0 }

// severalReplicas reports whether the set has more than one replica not
// removed.
func (c *Connector) severalReplicas() bool { return c.liveReplicas() > 1 }

// liveReplicas counts the replicas of the set not removed.
func (c *Connector) liveReplicas() int {
	n := 0
	for _, r := range c.replicaList() {
		if !r.removed.Load() {
			n++
		}
	}
	return n
}

// AddReplica adds a replica to the live handle, given as pgwait_replicas
// gives one (host, host:port, [ipv6]:port, inheriting the primary's other
// settings, or a postgres:// URL). It enters the rotation once a health
// probe finds it in recovery (within a health interval). Under
// pgwait_replica_discovery=dns a host name stands for every address it
// resolves to, followed from then on. A replica already in the set is an
// error.
func (c *Connector) AddReplica(replica string) error {
	rc, err := pgwait.ReplicaConfig(c.cfg.Primary, replica)
	if err != nil {
		return err
	}
	c.repMu.Lock()
	defer c.repMu.Unlock()
	addr := pgwait.Addr(rc)
	if c.inSetLocked(addr) {
		return fmt.Errorf("pgwait: replica %s is in the set already", addr)
	}
	for _, s := range c.sources {
		if s.name == addr && !s.removed.Load() {
			return fmt.Errorf("pgwait: replica %s is in the set already (its addresses are followed by DNS discovery)", addr)
		}
	}
	if c.cfg.Discovery == pgwait.DiscoveryDNS && discoverable(rc) {
		s := newSource(rc)
		c.sources = append(c.sources, s)
		c.named.Add(1)
		if c.health.started.Load() {
			c.health.addSource(s)
		}
		return nil
	}
	c.addLocked(rc, addr, "")
	return nil
}

// addLocked adds a replica at addr, found under the source name (empty:
// none), and starts its probes if they run; under repMu.
func (c *Connector) addLocked(rc *pgx.ConnConfig, addr, name string) *replica {
	old := c.replicaList()
	r := c.newReplica(c.track.Add(time.Now()), rc)
	r.addr, r.name = addr, name
	reps := append(slices.Clone(old), r)
	c.reps.Store(&reps)
	if c.health.started.Load() {
		c.health.add(r)
	}
	return r
}

// RemoveReplica takes the replica at addr (host:port, as Replicas reports
// it, or as given to pgwait_replicas or AddReplica for a host name DNS
// discovery follows: then every replica found under it) out of the live
// handle's set: no read starts on it again, and its connections are drained
// (each closed once the read on it, if any, ends and its pooled connection
// is reused), not cut.
func (c *Connector) RemoveReplica(addr string) error {
	c.repMu.Lock()
	defer c.repMu.Unlock()
	for _, s := range c.sources {
		if s.name == addr && !s.removed.Load() {
			s.removed.Store(true)
			c.named.Add(-1)
			for _, r := range s.reps {
				c.dropLocked(r)
			}
			return nil
		}
	}
	for _, r := range c.replicaList() {
		if r.addr == addr && !r.removed.Load() {
			if r.name != "" {
				return fmt.Errorf("pgwait: replica %s was found under %s by DNS discovery, which would find it again: remove %s, or take the address out of its DNS answer", addr, r.name, r.name)
			}
			c.dropLocked(r)
			return nil
		}
	}
	return fmt.Errorf("pgwait: no replica %s in the set; Replicas lists them", addr)
}

// dropLocked takes r out of the set, for good; under repMu.
func (c *Connector) dropLocked(r *replica) {
	r.removed.Store(true)
	c.track.Remove(r.index, time.Now())
}

// Close stops the replica health checks; sql.DB.Close calls it.
func (c *Connector) Close() error {
	c.health.stop()
	return nil
}

// Driver returns the pgwait driver.
func (c *Connector) Driver() sqldriver.Driver { return Driver{} }

// Config returns a copy of the connector's configuration.
func (c *Connector) Config() pgwait.Config { return c.cfg }

// HighWater returns the handle's position: the latest write made, or
// position read, through the connector.
func (c *Connector) HighWater() pgwait.LSN { return pgwait.LSN(c.track.HighWater()) }

// StatsOf returns the statistics of a *sql.DB opened with the pgwait driver.
func StatsOf(ctx context.Context, db *sql.DB) (pgwait.Stats, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return pgwait.Stats{}, err
	}
	defer conn.Close()
	var st pgwait.Stats
	err = conn.Raw(func(dc any) error {
		c, ok := unwrap(dc)
		if !ok {
			return errors.New("pgwait: StatsOf needs a *sql.DB opened with the pgwait driver (through a wrapper that hides the driver's connection, keep the *driver.Connector and call its Stats)")
		}
		st = c.c.Stats()
		return nil
	})
	return st, err
}

// unwrap finds pgwait's connection in what sql.Conn.Raw hands out, through
// wrappers that expose the connection they wrap with a Raw method (otelsql).
func unwrap(dc any) (*Conn, bool) {
	for range 8 {
		switch c := dc.(type) {
		case *Conn:
			return c, true
		case interface{ Raw() sqldriver.Conn }:
			dc = c.Raw()
		default:
			return nil, false
		}
	}
	return nil, false
}

// Stats returns what the connector's connections did so far.
func (c *Connector) Stats() pgwait.Stats {
	st := c.stats.snapshot()
	st.LagExclusions = c.track.LagExclusions()
	return st
}

type counters struct {
	writes, replicaReads, primaryReads, waits, waitsSkipped, waitTimeouts,
	fallbacks, readOnlyRetries, promotions, replicaErrors atomic.Uint64
	ejections, failovers, tokensReset, pins, recoveryConflicts, replicaTimeouts, visibilityTimeouts atomic.Uint64
	waitNanos                                                                                       atomic.Int64
	waitBuckets                                                                                     [14]atomic.Uint64
}

// waitBounds are the histogram's bucket bounds, copied once.
var waitBounds = pgwait.WaitBucketBounds()

func (k *counters) observeWait(d time.Duration) {
	k.waitNanos.Add(int64(d))
	i, _ := slices.BinarySearch(waitBounds, d)
	k.waitBuckets[i].Add(1)
}

func (k *counters) snapshot() pgwait.Stats {
	st := pgwait.Stats{
		Writes:             k.writes.Load(),
		ReplicaReads:       k.replicaReads.Load(),
		PrimaryReads:       k.primaryReads.Load(),
		Waits:              k.waits.Load(),
		WaitsSkipped:       k.waitsSkipped.Load(),
		WaitTimeouts:       k.waitTimeouts.Load(),
		Fallbacks:          k.fallbacks.Load(),
		ReadOnlyRetries:    k.readOnlyRetries.Load(),
		Promotions:         k.promotions.Load(),
		ReplicaErrors:      k.replicaErrors.Load(),
		Ejections:          k.ejections.Load(),
		Failovers:          k.failovers.Load(),
		TokensReset:        k.tokensReset.Load(),
		PinnedConns:        k.pins.Load(),
		RecoveryConflicts:  k.recoveryConflicts.Load(),
		ReplicaTimeouts:    k.replicaTimeouts.Load(),
		VisibilityTimeouts: k.visibilityTimeouts.Load(),
		WaitTime:           time.Duration(k.waitNanos.Load()),
		WaitHistogram:      make([]pgwait.WaitBucket, len(k.waitBuckets)),
	}
	for i := range k.waitBuckets {
		if i < len(waitBounds) {
			st.WaitHistogram[i].UpTo = waitBounds[i]
		}
		st.WaitHistogram[i].Count = k.waitBuckets[i].Load()
	}
	return st
}
