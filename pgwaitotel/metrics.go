// Package pgwaitotel reports a pgwait handle's statistics and the status of
// its replicas as OpenTelemetry metrics:
//
//	connector, err := driver.ConnectorOf(ctx, db) // or the *driver.Connector given to sql.OpenDB
//	reg, err := pgwaitotel.Register(otel.Meter("pgwait"), connector)
//	defer reg.Unregister()
//
// Register adds asynchronous instruments, observed at each collection from
// counters the handle keeps anyway: a collection opens no connection and
// sends no query. WaitTracer adds a histogram of wait times, recorded as
// reads wait. It is a module of its own, so that only applications that
// import it depend on the OpenTelemetry metric API.
//
// The instruments follow OpenTelemetry's naming rules, under a "pgwait."
// namespace since the semantic conventions have none for replicas; their
// per-server attributes are the conventions' db.system.name ("postgresql"),
// server.address and server.port (add db.namespace with WithAttributes):
//
//	pgwait.writes                   {statement}  statements and commits whose WAL position was captured
//	pgwait.reads                    {read}       reads each server served; pgwait.server.role = primary | replica
//	pgwait.waits.skipped            {read}       reads whose replica was known to be caught up
//	pgwait.fallbacks                {read}       reads meant for a replica that the primary served
//	pgwait.read_only_retries        {statement}  statements a replica refused as writes (25006)
//	pgwait.replica_errors           {error}      failed replica connections or reads
//	pgwait.promotions               {replica}    replicas found promoted
//	pgwait.failovers                {failover}   primary changes
//	pgwait.tokens.reset             {token}      forged or stale tokens reset
//	pgwait.connections.pinned       {connection} connections pinned to the primary
//	pgwait.wait.time                s            total time reads waited for replicas
//	pgwait.replica.waits            {wait}       waits each replica was asked for
//	pgwait.replica.wait_timeouts    {wait}       waits that ran out of time
//	pgwait.replica.fallbacks        {read}       reads it sent to the primary
//	pgwait.replica.ejections        {ejection}   times it left the rotation
//	pgwait.replica.state            1            1 for its state (pgwait.replica.state = in_rotation | ejected | probing | promoted)
//	pgwait.replica.lag              By           WAL bytes it is behind the latest primary position pgwait heard of
//	pgwait.replica.replay_delay     s            its replay delay at its last health probe
//
// The counters are cumulative from the handle's opening; the lag gauges are
// not reported while unknown (see pgwait.ReplicaStatus).
package pgwaitotel

import (
	"context"
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pgwait/pgwait"
)

// Source is what Register observes: a *driver.Connector is one.
type Source interface {
	// Stats returns the handle's counts.
	Stats() pgwait.Stats
	// Replicas returns the status of each replica.
	Replicas() []pgwait.ReplicaStatus
	// Config returns the handle's configuration (for the primary's address).
	Config() pgwait.Config
}

// An Option configures Register and WaitTracer.
type Option func(*options)

type options struct {
	attrs []attribute.KeyValue
}

// WithAttributes adds attributes to every measurement, to tell handles
// apart: WithAttributes(attribute.String("db.namespace", "orders")).
func WithAttributes(kv ...attribute.KeyValue) Option {
	return func(o *options) { o.attrs = append(o.attrs, kv...) }
}

func configure(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// serverAttrs returns the semantic conventions' attributes of the server at
// addr (host:port), after the handle's own.
func serverAttrs(base []attribute.KeyValue, addr string, more ...attribute.KeyValue) attribute.Set {
	kv := append([]attribute.KeyValue{attribute.String("db.system.name", "postgresql")}, base...)
	if host, port, err := net.SplitHostPort(addr); err == nil {
		kv = append(kv, attribute.String("server.address", host))
		if p, err := strconv.Atoi(port); err == nil {
			kv = append(kv, attribute.Int("server.port", p))
		}
	} else if addr != "" {
		kv = append(kv, attribute.String("server.address", addr))
	}
	return attribute.NewSet(append(kv, more...)...)
}

// stateValue is a state's attribute value: its name with underscores.
func stateValue(s pgwait.ReplicaState) string { return strings.ReplaceAll(s.String(), " ", "_") }

var states = []pgwait.ReplicaState{pgwait.ReplicaInRotation, pgwait.ReplicaEjected, pgwait.ReplicaProbing, pgwait.ReplicaPromoted}

// Register creates pgwait's asynchronous instruments on meter and a callback
// that observes src at each collection. Call the Registration's Unregister
// when the handle is closed. The error comes from meter: an instrument it
// refused, or the callback's registration.
func Register(meter metric.Meter, src Source, opts ...Option) (metric.Registration, error) {
	o := configure(opts)
	b := builder{meter: meter}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		if b.err != nil {
			return nil
		}
		var c metric.Int64ObservableCounter
		c, b.err = meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		b.all = append(b.all, c)
		return c
	}
	gauge := func(name, unit, desc string) metric.Float64ObservableGauge {
		if b.err != nil {
			return nil
		}
		var g metric.Float64ObservableGauge
		g, b.err = meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		b.all = append(b.all, g)
		return g
	}
	writes := counter("pgwait.writes", "{statement}", "Statements and commits whose WAL position pgwait captured.")
	reads := counter("pgwait.reads", "{read}", "Reads each server served.")
	skipped := counter("pgwait.waits.skipped", "{read}", "Reads that needed a position their replica was known to have replayed, and so did not wait.")
	fallbacks := counter("pgwait.fallbacks", "{read}", "Reads meant for a replica that the primary served.")
	retries := counter("pgwait.read_only_retries", "{statement}", "Statements a replica refused as writes (SQLSTATE 25006) that the primary then ran.")
	replicaErrors := counter("pgwait.replica_errors", "{error}", "Replica connections or reads that failed.")
	promotions := counter("pgwait.promotions", "{replica}", "Replicas found promoted (no longer in recovery).")
	failovers := counter("pgwait.failovers", "{failover}", "Times the primary changed (system identifier or timeline).")
	tokensReset := counter("pgwait.tokens.reset", "{token}", "Tokens reset because the primary never reached their position.")
	pinned := counter("pgwait.connections.pinned", "{connection}", "Connections pinned to the primary by session state replicas lack.")
	var waitTime metric.Float64ObservableCounter
	if b.err == nil {
		waitTime, b.err = meter.Float64ObservableCounter("pgwait.wait.time", metric.WithUnit("s"), metric.WithDescription("Total time reads waited for their replica."))
		b.all = append(b.all, waitTime)
	}
	rWaits := counter("pgwait.replica.waits", "{wait}", "Waits for a WAL position the replica was asked for.")
	rTimeouts := counter("pgwait.replica.wait_timeouts", "{wait}", "Waits on the replica that ran out of time.")
	rFallbacks := counter("pgwait.replica.fallbacks", "{read}", "Reads meant for the replica that the primary served because it timed out, was promoted or failed.")
	rEjections := counter("pgwait.replica.ejections", "{ejection}", "Times the replica left the rotation.")
	state := gauge("pgwait.replica.state", "1", "1 for the replica's current state, 0 for the others.")
	lag := gauge("pgwait.replica.lag", "By", "WAL bytes the replica was last confirmed behind the latest primary position pgwait heard of (a lower bound).")
	delay := gauge("pgwait.replica.replay_delay", "s", "The replica's replay delay at its last health probe: 0 when it had replayed all it received.")
	if b.err != nil {
		return nil, b.err
	}

	handle := metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{attribute.String("db.system.name", "postgresql")}, o.attrs...)...))
	cfg := src.Config()
	var primaryAddr string
	if cfg.Primary != nil {
		primaryAddr = pgwait.Addr(cfg.Primary)
	}
	primary := metric.WithAttributeSet(serverAttrs(o.attrs, primaryAddr, attribute.String("pgwait.server.role", "primary")))
	return meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		st := src.Stats()
		n := func(c metric.Int64ObservableCounter, v uint64, opt metric.ObserveOption) {
			obs.ObserveInt64(c, int64(v), opt)
		}
		n(writes, st.Writes, handle)
		n(reads, st.PrimaryReads, primary)
		n(skipped, st.WaitsSkipped, handle)
		n(fallbacks, st.Fallbacks, handle)
		n(retries, st.ReadOnlyRetries, handle)
		n(replicaErrors, st.ReplicaErrors, handle)
		n(promotions, st.Promotions, handle)
		n(failovers, st.Failovers, handle)
		n(tokensReset, st.TokensReset, handle)
		n(pinned, st.PinnedConns, handle)
		obs.ObserveFloat64(waitTime, st.WaitTime.Seconds(), handle)
		for _, r := range src.Replicas() {
			server := metric.WithAttributeSet(serverAttrs(o.attrs, r.Addr))
			n(reads, r.Reads, metric.WithAttributeSet(serverAttrs(o.attrs, r.Addr, attribute.String("pgwait.server.role", "replica"))))
			n(rWaits, r.Waits, server)
			n(rTimeouts, r.WaitTimeouts, server)
			n(rFallbacks, r.Fallbacks, server)
			n(rEjections, r.Ejections, server)
			for _, s := range states {
				v := 0.0
				if r.State == s {
					v = 1
				}
				obs.ObserveFloat64(state, v, metric.WithAttributeSet(serverAttrs(o.attrs, r.Addr, attribute.String("pgwait.replica.state", stateValue(s)))))
			}
			if r.LagBytesKnown {
				obs.ObserveFloat64(lag, float64(r.LagBytes), server)
			}
			if r.LagKnown {
				obs.ObserveFloat64(delay, r.Lag.Seconds(), server)
			}
		}
		return nil
	}, b.all...)
}

// builder collects the instruments Register creates, stopping at the first
// error.
type builder struct {
	meter metric.Meter
	all   []metric.Observable
	err   error
}
