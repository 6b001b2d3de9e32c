// Package pgwaitprom exports a pgwait handle's statistics and the status of
// its replicas as Prometheus metrics, through a prometheus.Collector:
//
//	connector, err := driver.ConnectorOf(ctx, db) // or the *driver.Connector given to sql.OpenDB
//	prometheus.MustRegister(pgwaitprom.NewCollector(connector))
//
// A scrape reads counters the handle keeps anyway: it opens no connection
// and sends no query. It is a module of its own, so that only applications
// that import it depend on prometheus/client_golang.
//
// Counters (each with the collector's constant labels, see WithConstLabels):
//
//	pgwait_writes_total                        statements and commits whose WAL position was captured
//	pgwait_reads_total{server,role}            reads each server served (role: primary or replica)
//	pgwait_waits_skipped_total                 reads whose replica was known to be caught up
//	pgwait_fallbacks_total                     reads meant for a replica that the primary served
//	pgwait_read_only_retries_total             statements a replica refused as writes (25006)
//	pgwait_replica_errors_total                failed replica connections or reads
//	pgwait_ejections_total                     times a replica left the rotation
//	pgwait_promotions_total                    replicas found promoted
//	pgwait_failovers_total                     primary changes (system identifier or timeline)
//	pgwait_tokens_reset_total                  forged or stale tokens reset
//	pgwait_pinned_connections_total            connections pinned to the primary
//	pgwait_replica_waits_total{server}         waits each replica was asked for
//	pgwait_replica_wait_timeouts_total{server} waits that ran out of time
//	pgwait_replica_fallbacks_total{server}     reads it sent to the primary (timeout, promoted, failed)
//	pgwait_replica_ejections_total{server}     times it left the rotation
//
// Gauges and the histogram:
//
//	pgwait_replica_up{server}                           1 in rotation, else 0
//	pgwait_replica_state{server,state}                  1 for its state: in_rotation, ejected, probing, promoted
//	pgwait_replica_lag_bytes{server}                    WAL bytes it is behind the latest primary position pgwait heard of
//	pgwait_replica_lag_seconds{server}                  its replay delay at the last probe
//	pgwait_replica_last_error_timestamp_seconds{server} when its last error happened
//	pgwait_wait_duration_seconds                        how long reads waited for replicas
//
// Lag gauges are left out while unknown (see pgwait.ReplicaStatus), rather
// than reported as 0, so that an alert on them does not see "caught up".
package pgwaitprom

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwait/pgwait"
)

// Source is what the collector reads: a *driver.Connector is one.
type Source interface {
	// Stats returns the handle's counts.
	Stats() pgwait.Stats
	// Replicas returns the status of each replica.
	Replicas() []pgwait.ReplicaStatus
	// Config returns the handle's configuration (for the primary's address).
	Config() pgwait.Config
}

// An Option configures a Collector.
type Option func(*options)

type options struct {
	namespace string
	labels    prometheus.Labels
}

// WithConstLabels adds labels to every metric, to tell several handles apart
// in one registry: WithConstLabels(prometheus.Labels{"db": "orders"}).
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) {
		for k, v := range l {
			if o.labels == nil {
				o.labels = prometheus.Labels{}
			}
			o.labels[k] = v
		}
	}
}

// WithNamespace replaces the metric names' "pgwait" prefix.
func WithNamespace(ns string) Option {
	return func(o *options) { o.namespace = ns }
}

// Collector is a prometheus.Collector over one pgwait handle. It is safe
// for concurrent scrapes.
type Collector struct {
	src     Source
	primary string
	descs   descs
}

type descs struct {
	writes, reads, waitsSkipped, fallbacks, readOnlyRetries, replicaErrors,
	ejections, promotions, failovers, tokensReset, pinned,
	replicaWaits, replicaTimeouts, replicaFallbacks, replicaEjections,
	up, state, lagBytes, lagSeconds, lastError, waitDuration *prometheus.Desc
}

// NewCollector returns a collector of src's metrics; register it with a
// prometheus.Registerer.
func NewCollector(src Source, opts ...Option) *Collector {
	o := options{namespace: "pgwait"}
	for _, opt := range opts {
		opt(&o)
	}
	name := func(s string) string { return prometheus.BuildFQName(o.namespace, "", s) }
	d := func(n, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name(n), help, labels, o.labels)
	}
	cfg := src.Config()
	var primary string
	if cfg.Primary != nil {
		primary = pgwait.Addr(cfg.Primary)
	}
	return &Collector{src: src, primary: primary, descs: descs{
		writes:           d("writes_total", "Statements and commits whose WAL position pgwait captured."),
		reads:            d("reads_total", "Reads each server served.", "server", "role"),
		waitsSkipped:     d("waits_skipped_total", "Reads that needed a position their replica was known to have replayed, and so did not wait."),
		fallbacks:        d("fallbacks_total", "Reads meant for a replica that the primary served (wait timeout, promoted or failed replica, no replica in rotation)."),
		readOnlyRetries:  d("read_only_retries_total", "Statements a replica refused as writes (SQLSTATE 25006) that the primary then ran."),
		replicaErrors:    d("replica_errors_total", "Replica connections or reads that failed."),
		ejections:        d("ejections_total", "Times a replica left the rotation."),
		promotions:       d("promotions_total", "Replicas found promoted (no longer in recovery)."),
		failovers:        d("failovers_total", "Times the primary changed (system identifier or timeline)."),
		tokensReset:      d("tokens_reset_total", "Tokens reset because the primary never reached their position (forged, or from a rebuilt cluster)."),
		pinned:           d("pinned_connections_total", "Connections pinned to the primary by session state replicas lack."),
		replicaWaits:     d("replica_waits_total", "Waits for a WAL position each replica was asked for.", "server"),
		replicaTimeouts:  d("replica_wait_timeouts_total", "Waits that ran out of time, per replica.", "server"),
		replicaFallbacks: d("replica_fallbacks_total", "Reads meant for the replica that the primary served because it timed out, was promoted or failed.", "server"),
		replicaEjections: d("replica_ejections_total", "Times the replica left the rotation.", "server"),
		up:               d("replica_up", "1 when the replica serves reads, 0 when it is out of the rotation.", "server"),
		state:            d("replica_state", "1 for the replica's current state (in_rotation, ejected, probing, promoted), 0 for the others.", "server", "state"),
		lagBytes:         d("replica_lag_bytes", "WAL bytes the replica was last confirmed behind the latest primary position pgwait heard of (a lower bound).", "server"),
		lagSeconds:       d("replica_lag_seconds", "The replica's replay delay at its last health probe: 0 when it had replayed all it received.", "server"),
		lastError:        d("replica_last_error_timestamp_seconds", "When the replica's last connection, read or probe error happened, in Unix seconds.", "server"),
		waitDuration:     d("wait_duration_seconds", "How long reads waited for their replica to replay the position they needed."),
	}}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.descs
	for _, desc := range []*prometheus.Desc{d.writes, d.reads, d.waitsSkipped, d.fallbacks, d.readOnlyRetries,
		d.replicaErrors, d.ejections, d.promotions, d.failovers, d.tokensReset, d.pinned, d.replicaWaits,
		d.replicaTimeouts, d.replicaFallbacks, d.replicaEjections, d.up, d.state, d.lagBytes, d.lagSeconds,
		d.lastError, d.waitDuration} {
		ch <- desc
	}
}

// states are the values of pgwait_replica_state's state label.
var states = []pgwait.ReplicaState{pgwait.ReplicaInRotation, pgwait.ReplicaEjected, pgwait.ReplicaProbing, pgwait.ReplicaPromoted}

// stateLabel is a state's label value: its name with underscores.
func stateLabel(s pgwait.ReplicaState) string { return strings.ReplaceAll(s.String(), " ", "_") }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	rs := c.src.Replicas()
	d := &c.descs
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter(d.writes, st.Writes)
	counter(d.reads, st.PrimaryReads, c.primary, "primary")
	counter(d.waitsSkipped, st.WaitsSkipped)
	counter(d.fallbacks, st.Fallbacks)
	counter(d.readOnlyRetries, st.ReadOnlyRetries)
	counter(d.replicaErrors, st.ReplicaErrors)
	counter(d.ejections, st.Ejections)
	counter(d.promotions, st.Promotions)
	counter(d.failovers, st.Failovers)
	counter(d.tokensReset, st.TokensReset)
	counter(d.pinned, st.PinnedConns)
	for _, r := range rs {
		counter(d.reads, r.Reads, r.Addr, "replica")
		counter(d.replicaWaits, r.Waits, r.Addr)
		counter(d.replicaTimeouts, r.WaitTimeouts, r.Addr)
		counter(d.replicaFallbacks, r.Fallbacks, r.Addr)
		counter(d.replicaEjections, r.Ejections, r.Addr)
		up := 0.0
		if r.State == pgwait.ReplicaInRotation {
			up = 1
		}
		gauge(d.up, up, r.Addr)
		for _, s := range states {
			v := 0.0
			if r.State == s {
				v = 1
			}
			gauge(d.state, v, r.Addr, stateLabel(s))
		}
		if r.LagBytesKnown {
			gauge(d.lagBytes, float64(r.LagBytes), r.Addr)
		}
		if r.LagKnown {
			gauge(d.lagSeconds, r.Lag.Seconds(), r.Addr)
		}
		if !r.LastErrorAt.IsZero() {
			gauge(d.lastError, float64(r.LastErrorAt.UnixNano())/1e9, r.Addr)
		}
	}
	buckets := make(map[float64]uint64, len(st.WaitHistogram))
	var count uint64
	for _, b := range st.WaitHistogram {
		count += b.Count
		if b.UpTo > 0 {
			buckets[b.UpTo.Seconds()] = count // cumulative, as Prometheus wants
		}
	}
	ch <- prometheus.MustNewConstHistogram(d.waitDuration, count, st.WaitTime.Seconds(), buckets)
}
