package pgwaitprom_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaitprom"
	"github.com/pgwait/pgwait/pgwaittest"
)

// value returns the value of the metric name whose labels include want, and
// whether there is one.
func value(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestScrape scrapes a real primary and replica: reads and writes counted
// per server, a replica falling behind (replay paused) shows as out of the
// rotation with its lag and a wait timeout, and comes back.
func TestScrape(t *testing.T) {
	pair := pgwaittest.New(t,
		pgwaittest.WithParam("pgwait_health_interval", "50ms"),
		pgwaittest.WithParam("pgwait_wait_timeout", "200ms"))
	db := pair.Open(t)
	ctx := t.Context()
	connector, err := driver.ConnectorOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pgwaitprom.NewCollector(connector, pgwaitprom.WithConstLabels(prometheus.Labels{"db": "test"})))
	replica := connector.Replicas()[0].Addr

	mustExec(t, db, "CREATE TABLE items (id int)")
	mustExec(t, db, "INSERT INTO items VALUES (1)")
	mustRead(t, db)
	if v, _ := value(t, reg, "pgwait_writes_total", nil); v != 2 {
		t.Errorf("pgwait_writes_total = %v, want 2", v)
	}
	if v, _ := value(t, reg, "pgwait_reads_total", map[string]string{"server": replica, "role": "replica"}); v != 1 {
		t.Errorf("replica reads = %v, want 1", v)
	}
	if v, _ := value(t, reg, "pgwait_replica_up", map[string]string{"server": replica, "db": "test"}); v != 1 {
		t.Errorf("pgwait_replica_up = %v, want 1", v)
	}

	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO items VALUES (2)")
	mustRead(t, db) // times out on the replica; the primary serves it
	for name, want := range map[string]float64{
		"pgwait_replica_wait_timeouts_total": 1,
		"pgwait_replica_fallbacks_total":     1,
		"pgwait_replica_ejections_total":     1,
		"pgwait_replica_up":                  0,
	} {
		if v, _ := value(t, reg, name, map[string]string{"server": replica}); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v, _ := value(t, reg, "pgwait_wait_duration_seconds", nil); v < 1 {
		t.Errorf("pgwait_wait_duration_seconds count = %v, want at least the timed-out wait", v)
	}
	eventually(t, "a positive pgwait_replica_lag_seconds and _lag_bytes while replay is paused", func() bool {
		s, ok1 := value(t, reg, "pgwait_replica_lag_seconds", map[string]string{"server": replica})
		b, ok2 := value(t, reg, "pgwait_replica_lag_bytes", map[string]string{"server": replica})
		return ok1 && ok2 && s > 0 && b > 0
	})

	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica back in rotation", func() bool {
		v, _ := value(t, reg, "pgwait_replica_state", map[string]string{"server": replica, "state": "in_rotation"})
		return v == 1
	})
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), q); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, db *sql.DB) {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("no %s after 15 s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
