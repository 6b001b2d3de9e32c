package pgwaitotel_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaitotel"
	"github.com/pgwait/pgwait/pgwaittest"
)

// fake is a Source with fixed answers.
type fake struct {
	st pgwait.Stats
	rs []pgwait.ReplicaStatus
}

func (f fake) Stats() pgwait.Stats              { return f.st }
func (f fake) Replicas() []pgwait.ReplicaStatus { return f.rs }
func (f fake) Config() pgwait.Config {
	return pgwait.Config{Primary: &pgx.ConnConfig{Config: pgconn.Config{Host: "primary", Port: 5432}}}
}

// collect reads every metric from reader.
func collect(t *testing.T, reader sdkmetric.Reader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// point finds the value of metric name at the point whose attributes
// include want.
func point(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (float64, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			match := func(set attribute.Set) bool {
				for _, kv := range want {
					if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
						return false
					}
				}
				return true
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return float64(p.Value), true
					}
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return p.Value, true
					}
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return p.Value, true
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return float64(p.Count), true
					}
				}
			}
		}
	}
	return 0, false
}

func TestRegister(t *testing.T) {
	src := fake{
		st: pgwait.Stats{Writes: 3, PrimaryReads: 2, WaitTime: 1500 * time.Millisecond},
		rs: []pgwait.ReplicaStatus{
			{Addr: "r1:5433", Reads: 7, Waits: 2, WaitTimeouts: 1, LagBytesKnown: true, LagBytes: 128, LagKnown: true, Lag: 250 * time.Millisecond},
			{Addr: "r2:5432", State: pgwait.ReplicaProbing, Ejections: 1},
		},
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	reg, err := pgwaitotel.Register(mp.Meter("test"), src, pgwaitotel.WithAttributes(attribute.String("db.namespace", "orders")))
	if err != nil {
		t.Fatal(err)
	}
	rm := collect(t, reader)
	r1 := []attribute.KeyValue{attribute.String("server.address", "r1"), attribute.Int("server.port", 5433)}
	r2 := attribute.String("server.address", "r2")
	tests := []struct {
		name   string
		metric string
		attrs  []attribute.KeyValue
		want   float64
		absent bool
	}{
		{"writes", "pgwait.writes", []attribute.KeyValue{attribute.String("db.namespace", "orders"), attribute.String("db.system.name", "postgresql")}, 3, false},
		{"primary reads", "pgwait.reads", []attribute.KeyValue{attribute.String("pgwait.server.role", "primary"), attribute.String("server.address", "primary"), attribute.Int("server.port", 5432)}, 2, false},
		{"replica reads", "pgwait.reads", append(r1, attribute.String("pgwait.server.role", "replica")), 7, false},
		{"wait time", "pgwait.wait.time", nil, 1.5, false},
		{"replica waits", "pgwait.replica.waits", r1, 2, false},
		{"replica timeouts", "pgwait.replica.wait_timeouts", r1, 1, false},
		{"lag", "pgwait.replica.lag", r1, 128, false},
		{"replay delay", "pgwait.replica.replay_delay", r1, 0.25, false},
		{"in rotation", "pgwait.replica.state", append(r1, attribute.String("pgwait.replica.state", "in_rotation")), 1, false},
		{"not probing", "pgwait.replica.state", append(r1, attribute.String("pgwait.replica.state", "probing")), 0, false},
		{"probing", "pgwait.replica.state", []attribute.KeyValue{r2, attribute.String("pgwait.replica.state", "probing")}, 1, false},
		{"ejections", "pgwait.replica.ejections", []attribute.KeyValue{r2}, 1, false},
		{"unknown lag is left out", "pgwait.replica.lag", []attribute.KeyValue{r2}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := point(rm, tt.metric, tt.attrs...)
			if ok == tt.absent {
				t.Fatalf("%s %v: found %v, want found %v", tt.metric, tt.attrs, ok, !tt.absent)
			}
			if got != tt.want {
				t.Errorf("%s %v = %v, want %v", tt.metric, tt.attrs, got, tt.want)
			}
		})
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if _, ok := point(collect(t, reader), "pgwait.writes"); ok {
		t.Error("pgwait.writes still observed after Unregister")
	}
}

// TestRealServers collects from a real primary and replica, the wait
// histogram included, with the replica behind (replay paused) and back.
func TestRealServers(t *testing.T) {
	pair := pgwaittest.New(t,
		pgwaittest.WithParam("pgwait_health_interval", "50ms"),
		pgwaittest.WithParam("pgwait_wait_timeout", "200ms"))
	ctx := t.Context()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	meter := mp.Meter("pgwait")
	waits, err := pgwaitotel.NewWaitTracer(meter)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgwait.ParseConfig(pair.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tracer = waits
	connector, err := driver.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	reg, err := pgwaitotel.Register(meter, connector)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	replica := attribute.String("server.address", "127.0.0.1")

	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		t.Helper()
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(new(int)); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE items (id int)")
	exec("INSERT INTO items VALUES (1)")
	read()
	rm := collect(t, reader)
	if v, _ := point(rm, "pgwait.writes"); v != 2 {
		t.Errorf("pgwait.writes = %v, want 2", v)
	}
	if v, _ := point(rm, "pgwait.reads", replica, attribute.String("pgwait.server.role", "replica")); v != 1 {
		t.Errorf("replica reads = %v, want 1", v)
	}
	if v, _ := point(rm, "pgwait.wait.duration", attribute.String("pgwait.wait.status", "success")); v != float64(connector.Stats().Waits) {
		t.Errorf("pgwait.wait.duration count = %v, want the handle's %d waits", v, connector.Stats().Waits)
	}

	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	exec("INSERT INTO items VALUES (2)")
	read() // its wait times out; the primary serves it
	rm = collect(t, reader)
	if v, _ := point(rm, "pgwait.replica.wait_timeouts", replica); v != 1 {
		t.Errorf("pgwait.replica.wait_timeouts = %v, want 1", v)
	}
	if v, _ := point(rm, "pgwait.wait.duration", attribute.String("pgwait.wait.status", "timeout"), attribute.String("pgwait.fallback", "timeout")); v != 1 {
		t.Errorf("timed-out waits in pgwait.wait.duration = %v, want 1", v)
	}
	if v, _ := point(rm, "pgwait.replica.state", replica, attribute.String("pgwait.replica.state", "in_rotation")); v != 0 {
		t.Errorf("a replica behind is still in rotation")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rm = collect(t, reader)
		d, ok1 := point(rm, "pgwait.replica.replay_delay", replica)
		l, ok2 := point(rm, "pgwait.replica.lag", replica)
		if ok1 && ok2 && d > 0 && l > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no positive pgwait.replica.replay_delay and lag while replay is paused (%v %v, %v %v)", d, ok1, l, ok2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
}
