package pgwaitotel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pgwait/pgwait"
)

// WaitTracer is a pgwait.Tracer that records how long each read waited for
// its replica in the histogram pgwait.wait.duration (seconds), with the
// replica's server.address and server.port and the wait's outcome as
// pgwait.wait.status ("success", "timeout", "not in recovery"). Set it as
// the handle's Config.Tracer; to keep a tracer of your own as well, call
// both from a pgwait.TracerFunc.
type WaitTracer struct {
	hist  metric.Float64Histogram
	attrs []attribute.KeyValue
}

// waitBuckets are the histogram's bucket bounds in seconds: pgwait's own
// (pgwait.WaitBucketBounds), from 100µs to 1s.
func waitBuckets() []float64 {
	var b []float64
	for _, d := range pgwait.WaitBucketBounds() {
		b = append(b, d.Seconds())
	}
	return b
}

// NewWaitTracer creates the pgwait.wait.duration histogram on meter. The
// error is meter's.
func NewWaitTracer(meter metric.Meter, opts ...Option) (*WaitTracer, error) {
	o := configure(opts)
	h, err := meter.Float64Histogram("pgwait.wait.duration",
		metric.WithUnit("s"),
		metric.WithDescription("How long reads waited for their replica to replay the position they needed."),
		metric.WithExplicitBucketBoundaries(waitBuckets()...))
	if err != nil {
		return nil, err
	}
	return &WaitTracer{hist: h, attrs: o.attrs}, nil
}

// TraceStatement records e's wait, if it had one. A read that the primary
// served after its wait (a timeout, a promoted replica) is reported with the
// primary's address, not the replica's: its wait is then recorded without
// server attributes, and with pgwait.fallback, the reason.
func (t *WaitTracer) TraceStatement(e pgwait.Event) {
	if e.WaitStatus == "" {
		return
	}
	status := attribute.String("pgwait.wait.status", e.WaitStatus)
	var set attribute.Set
	if e.Fallback != "" {
		kv := append([]attribute.KeyValue{attribute.String("db.system.name", "postgresql")}, t.attrs...)
		set = attribute.NewSet(append(kv, status, attribute.String("pgwait.fallback", e.Fallback))...)
	} else {
		set = serverAttrs(t.attrs, e.Addr, status)
	}
	t.hist.Record(context.Background(), e.Waited.Seconds(), metric.WithAttributeSet(set))
}
