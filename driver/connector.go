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
	"sync/atomic"
	"time"

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
// handle-wide write high-water mark and what each replica is known to have
// replayed. Use one Connector per sql.DB.
type Connector struct {
	cfg      pgwait.Config
	primary  sqldriver.Connector
	replicas []*replica

	highWater atomic.Uint64 // LSN of the latest write through this handle
	next      atomic.Uint32 // round-robin position among replicas
	stats     counters
}

// replica is one replica and what is known about it.
type replica struct {
	addr      string
	connector sqldriver.Connector
	// replayed is an LSN this replica is known to have replayed: reads that
	// need no more than this skip the wait.
	replayed atomic.Uint64
	// downUntil is when a replica that failed or was found promoted may be
	// tried again (unix nanoseconds).
	downUntil atomic.Int64
}

// replicaRetryAfter is how long a failed replica is left alone.
const replicaRetryAfter = 5 * time.Second

func (r *replica) usable(now time.Time) bool { return r.downUntil.Load() <= now.UnixNano() }

func (r *replica) markDown(d time.Duration) { r.downUntil.Store(time.Now().Add(d).UnixNano()) }

func (r *replica) confirm(l lsn.LSN) {
	for {
		cur := r.replayed.Load()
		if uint64(l) <= cur || r.replayed.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// NewConnector returns a connector for cfg, for sql.OpenDB.
func NewConnector(cfg *pgwait.Config) (*Connector, error) {
	if cfg == nil || cfg.Primary == nil {
		return nil, errors.New("pgwait: the config has no primary; build it with pgwait.ParseConfig")
	}
	c := &Connector{cfg: *cfg}
	if c.cfg.WaitTimeout < time.Millisecond {
		c.cfg.WaitTimeout = pgwait.DefaultWaitTimeout
	}
	c.primary = stdlib.GetConnector(*cfg.Primary.Copy())
	for _, rc := range cfg.Replicas {
		c.replicas = append(c.replicas, &replica{
			addr:      pgwait.Addr(rc),
			connector: stdlib.GetConnector(*rc.Copy()),
		})
	}
	return c, nil
}

// Connect returns a connection; its server connections open on first use.
func (c *Connector) Connect(ctx context.Context) (sqldriver.Conn, error) {
	conn := &Conn{c: c}
	// Open the primary now so that a wrong DSN or a down primary fails here,
	// as with any other driver.
	if _, err := conn.primarySide(ctx); err != nil {
		return nil, err
	}
	return conn, nil
}

// Driver returns the pgwait driver.
func (c *Connector) Driver() sqldriver.Driver { return Driver{} }

// Config returns a copy of the connector's configuration.
func (c *Connector) Config() pgwait.Config { return c.cfg }

// HighWater returns the LSN of the latest write made through the connector.
func (c *Connector) HighWater() pgwait.LSN { return pgwait.LSN(c.highWater.Load()) }

func (c *Connector) observeWrite(l lsn.LSN) {
	for {
		cur := c.highWater.Load()
		if uint64(l) <= cur || c.highWater.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// pickReplica chooses a replica for a new replica connection: round robin
// over the usable ones. It returns nil when none is usable.
func (c *Connector) pickReplica() *replica {
	n := len(c.replicas)
	if n == 0 {
		return nil
	}
	now := time.Now()
	start := int(c.next.Add(1))
	for i := range n {
		r := c.replicas[(start+i)%n]
		if r.usable(now) {
			return r
		}
	}
	return nil
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
		c, ok := dc.(*Conn)
		if !ok {
			return errors.New("pgwait: StatsOf needs a *sql.DB opened with the pgwait driver")
		}
		st = c.c.Stats()
		return nil
	})
	return st, err
}

// Stats returns what the connector's connections did so far.
func (c *Connector) Stats() pgwait.Stats { return c.stats.snapshot() }

type counters struct {
	writes, replicaReads, primaryReads, waits, waitsSkipped, waitTimeouts,
	fallbacks, readOnlyRetries, promotions, replicaErrors atomic.Uint64
	waitNanos atomic.Int64
}

func (k *counters) snapshot() pgwait.Stats {
	return pgwait.Stats{
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
		WaitTime:        time.Duration(k.waitNanos.Load()),
	}
}
