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
// primary and one to a replica, each opened on first use through pgx stdlib.
// The underlying *pgx.Conn of each is reachable through sql.Conn.Raw and
// (*Conn).Primary / (*Conn).Replica.
package driver

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/lsn"
)

// Name is the name the driver registers with database/sql.
const Name = "pgwait"

func init() {
	sql.Register(Name, Driver{})
}

// Driver is the database/sql driver. sql.Open("pgwait", dsn) uses it; dsn is
// what pgwait.ParseConfig reads.
type Driver struct{}

// Open opens one connection; database/sql calls OpenConnector instead.
func (d Driver) Open(dsn string) (sqldriver.Conn, error) {
	c, err := d.OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector parses dsn once per sql.DB.
func (Driver) OpenConnector(dsn string) (sqldriver.Connector, error) {
	cfg, err := pgwait.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnector(cfg)
}

// Connector opens pgwait connections that share one consistency state: the
// handle-wide write high-water mark, what each replica is known to have
// replayed, and which primary (system, timeline) the LSNs belong to. Use one
// Connector per sql.DB; sql.DB.Close closes it.
type Connector struct {
	cfg      pgwait.Config
	primary  sqldriver.Connector
	replicas []*replica

	highWater atomic.Uint64 // LSN of the latest write through this handle
	seen      atomic.Uint64 // a position some read through this handle saw
	next      atomic.Uint32 // round-robin position among replicas
	stats     counters

	epochMu sync.Mutex
	epoch   epoch        // the primary the LSNs belong to
	gen     atomic.Int64 // bumped at each failover

	health healthChecker
}

// epoch identifies a primary's WAL history: a failover changes the system
// identifier (a rebuilt cluster) or the timeline (a promoted replica).
type epoch struct {
	system   string
	timeline uint32
	// start is the new primary's WAL position when pgwait first saw it:
	// LSNs remembered from the old primary past it may never exist here.
	start lsn.LSN
}

// replica is one replica and what is known about it.
type replica struct {
	addr      string
	cfg       *pgx.ConnConfig
	connector sqldriver.Connector
	// replayed is an LSN this replica is known to have replayed: reads that
	// need no more than this skip the wait.
	replayed atomic.Uint64
	// downUntil is when an ejected replica may be probed again (unix
	// nanoseconds); 0 while it is in rotation.
	downUntil atomic.Int64
	// needs is what an ejected replica must have replayed to come back (the
	// LSN a wait timed out on).
	needs atomic.Uint64
	fails atomic.Int32
}

// usable reports whether r is in rotation.
func (r *replica) usable() bool { return r.downUntil.Load() == 0 }

func (r *replica) confirm(l lsn.LSN) { raise(&r.replayed, l) }

// Backoff for ejected replicas: probes that keep failing double the wait
// before the next one, from the health interval up to maxBackoff.
const maxBackoff = 30 * time.Second

// eject takes r out of rotation until a probe finds it healthy and, when
// needs is set (the LSN a wait timed out on), caught up to it. Reads call it;
// however many reads see the same trouble, the first probe comes one health
// interval later. A replica ejected for an error may have crashed and come
// back behind what it had replayed: what was known of it is forgotten.
func (c *Connector) eject(r *replica, needs lsn.LSN) {
	if needs == 0 {
		r.replayed.Store(0)
	}
	if r.downUntil.CompareAndSwap(0, time.Now().Add(c.cfg.HealthInterval).UnixNano()) {
		r.fails.Store(1)
		c.stats.ejections.Add(1)
	}
	raise(&r.needs, needs)
}

// probeFailed ejects r after a failed probe, doubling the backoff with each
// failure in a row.
func (c *Connector) probeFailed(r *replica) {
	r.replayed.Store(0)
	fails := r.fails.Add(1)
	backoff := min(c.cfg.HealthInterval<<min(fails-1, 10), maxBackoff)
	if r.downUntil.Swap(time.Now().Add(backoff).UnixNano()) == 0 {
		c.stats.ejections.Add(1)
	}
}

// readmit puts r back in rotation.
func (r *replica) readmit() {
	r.fails.Store(0)
	r.needs.Store(0)
	r.downUntil.Store(0)
}

// NewConnector returns a connector for cfg, for sql.OpenDB. It refuses a
// config that cfg.Validate refuses, with the same error.
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
	c.primary = stdlib.GetConnector(*cfg.Primary.Copy())
	for _, rc := range cfg.Replicas {
		rc = rc.Copy()
		// A wait abandoned by a client that went away must not linger on
		// the replica: have the server check the client while it waits.
		if _, ok := rc.RuntimeParams["client_connection_check_interval"]; !ok {
			rc.RuntimeParams["client_connection_check_interval"] = "1000"
		}
		c.replicas = append(c.replicas, &replica{
			addr:      pgwait.Addr(rc),
			cfg:       rc,
			connector: stdlib.GetConnector(*rc),
		})
	}
	c.health.init(c)
	return c, nil
}

// Connect returns a connection with its primary connection open; its replica
// connections open on first use.
func (c *Connector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	c.health.start()
	conn := &Conn{c: c, gen: c.gen.Load()}
	// Open the primary now so that a wrong DSN or a down primary fails here,
	// as with any other driver.
	if _, err := conn.primarySide(ctx); err != nil {
		return nil, err
	}
	return conn, nil
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

// HighWater returns the LSN of the latest write made through the connector.
func (c *Connector) HighWater() pgwait.LSN { return pgwait.LSN(c.highWater.Load()) }

func (c *Connector) observeWrite(l lsn.LSN) { raise(&c.highWater, l) }

// raise moves v up to l if l is later.
func raise(v *atomic.Uint64, l lsn.LSN) {
	for {
		cur := v.Load()
		if uint64(l) <= cur || v.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// currentEpoch returns the primary the connector's LSNs belong to.
func (c *Connector) currentEpoch() epoch {
	c.epochMu.Lock()
	defer c.epochMu.Unlock()
	return c.epoch
}

// observePrimary records the identity of a primary just connected to. When
// it differs from the one before, the primary failed over: LSNs remembered
// past the new primary's start are set aside.
func (c *Connector) observePrimary(e epoch) {
	if e.system == "" {
		return
	}
	c.epochMu.Lock()
	defer c.epochMu.Unlock()
	old := c.epoch
	switch {
	case old.system == "":
		c.epoch = e
		return
	case old.system == e.system && old.timeline == e.timeline:
		return
	case old.system == e.system && e.timeline < old.timeline:
		return // a connection to a stale primary; the newer timeline stands
	}
	c.epoch = e
	c.gen.Add(1)
	c.stats.failovers.Add(1)
	for _, v := range []*atomic.Uint64{&c.highWater, &c.seen} {
		for {
			cur := v.Load()
			if cur <= uint64(e.start) || v.CompareAndSwap(cur, uint64(e.start)) {
				break
			}
		}
	}
	for _, r := range c.replicas {
		r.replayed.Store(0)
	}
}

// replicaFor picks the replica for a read that must see target. current is
// the replica the connection used last (nil if none). It returns nil when no
// replica is in rotation.
func (c *Connector) replicaFor(current *replica, target lsn.LSN) *replica {
	n := len(c.replicas)
	if n == 0 {
		return nil
	}
	if c.cfg.Balance != pgwait.BalanceLeastLag {
		if current != nil && current.usable() {
			return current
		}
		start := int(c.next.Add(1))
		if c.cfg.Balance == pgwait.BalanceRandom {
			start = rand.IntN(n)
		}
		for i := range n {
			if r := c.replicas[(start+i)%n]; r.usable() {
				return r
			}
		}
		return nil
	}
	// Least lag: the current replica if it needs no wait, else one that
	// needs no wait (in turn), else the one furthest ahead.
	if current != nil && current.usable() && lsn.LSN(current.replayed.Load()) >= target {
		return current
	}
	var best *replica
	start := int(c.next.Add(1))
	for i := range n {
		r := c.replicas[(start+i)%n]
		if !r.usable() {
			continue
		}
		if lsn.LSN(r.replayed.Load()) >= target {
			return r
		}
		if best == nil || r.replayed.Load() > best.replayed.Load() || r == current && r.replayed.Load() == best.replayed.Load() {
			best = r
		}
	}
	return best
}

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
func (c *Connector) Stats() pgwait.Stats { return c.stats.snapshot() }

type counters struct {
	writes, replicaReads, primaryReads, waits, waitsSkipped, waitTimeouts,
	fallbacks, readOnlyRetries, promotions, replicaErrors atomic.Uint64
	ejections, failovers atomic.Uint64
	waitNanos            atomic.Int64
	waitBuckets          [14]atomic.Uint64
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
		Writes:          k.writes.Load(),
		ReplicaReads:    k.replicaReads.Load(),
		PrimaryReads:    k.primaryReads.Load(),
		Waits:           k.waits.Load(),
		WaitsSkipped:    k.waitsSkipped.Load(),
		WaitTimeouts:    k.waitTimeouts.Load(),
		Fallbacks:       k.fallbacks.Load(),
		ReadOnlyRetries: k.readOnlyRetries.Load(),
		Promotions:      k.promotions.Load(),
		ReplicaErrors:   k.replicaErrors.Load(),
		Ejections:       k.ejections.Load(),
		Failovers:       k.failovers.Load(),
		WaitTime:        time.Duration(k.waitNanos.Load()),
		WaitHistogram:   make([]pgwait.WaitBucket, len(k.waitBuckets)),
	}
	for i := range k.waitBuckets {
		if i < len(waitBounds) {
			st.WaitHistogram[i].UpTo = waitBounds[i]
		}
		st.WaitHistogram[i].Count = k.waitBuckets[i].Load()
	}
	return st
}
