package pgwaitprom_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaitprom"
)

// fake is a Source with fixed answers.
type fake struct {
	st pgwait.Stats
	rs []pgwait.ReplicaStatus
}

func (f fake) Stats() pgwait.Stats              { return f.st }
func (f fake) Replicas() []pgwait.ReplicaStatus { return f.rs }
func (f fake) Config() pgwait.Config {
	return pgwait.Config{Primary: &pgx.ConnConfig{Config: pgconnConfig("primary", 5432)}}
}

func histogram(counts ...uint64) []pgwait.WaitBucket {
	bounds := pgwait.WaitBucketBounds()
	h := make([]pgwait.WaitBucket, len(bounds)+1)
	for i := range h {
		if i < len(bounds) {
			h[i].UpTo = bounds[i]
		}
		if i < len(counts) {
			h[i].Count = counts[i]
		}
	}
	return h
}

func TestCollect(t *testing.T) {
	at := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		src     fake
		opts    []pgwaitprom.Option
		metrics []string
		want    string
	}{
		{
			name:    "a replica in rotation",
			src:     fake{st: pgwait.Stats{Writes: 3, PrimaryReads: 2}, rs: []pgwait.ReplicaStatus{{Addr: "r1:5432", Reads: 7, Waits: 2, LagBytesKnown: true, LagBytes: 128, LagKnown: true, Lag: 1500 * time.Millisecond}}},
			metrics: []string{"pgwait_writes_total", "pgwait_reads_total", "pgwait_replica_up", "pgwait_replica_lag_bytes", "pgwait_replica_lag_seconds", "pgwait_replica_last_error_timestamp_seconds"},
			want: `
# HELP pgwait_reads_total Reads each server served.
# TYPE pgwait_reads_total counter
pgwait_reads_total{role="primary",server="primary:5432"} 2
pgwait_reads_total{role="replica",server="r1:5432"} 7
# HELP pgwait_replica_lag_bytes WAL bytes the replica was last confirmed behind the latest primary position pgwait heard of (a lower bound).
# TYPE pgwait_replica_lag_bytes gauge
pgwait_replica_lag_bytes{server="r1:5432"} 128
# HELP pgwait_replica_lag_seconds The replica's replay delay at its last health probe: 0 when it had replayed all it received.
# TYPE pgwait_replica_lag_seconds gauge
pgwait_replica_lag_seconds{server="r1:5432"} 1.5
# HELP pgwait_replica_up 1 when the replica serves reads, 0 when it is out of the rotation.
# TYPE pgwait_replica_up gauge
pgwait_replica_up{server="r1:5432"} 1
# HELP pgwait_writes_total Statements and commits whose WAL position pgwait captured.
# TYPE pgwait_writes_total counter
pgwait_writes_total 3
`,
		},
		{
			name:    "an ejected replica: lag unknown is left out",
			src:     fake{rs: []pgwait.ReplicaStatus{{Addr: "r1:5432", State: pgwait.ReplicaProbing, Reason: "failed", Ejections: 1, LastError: errors.New("refused"), LastErrorAt: at}}},
			opts:    []pgwaitprom.Option{pgwaitprom.WithConstLabels(prometheus.Labels{"db": "orders"})},
			metrics: []string{"pgwait_replica_state", "pgwait_replica_lag_bytes", "pgwait_replica_ejections_total", "pgwait_replica_last_error_timestamp_seconds"},
			want: `
# HELP pgwait_replica_ejections_total Times the replica left the rotation.
# TYPE pgwait_replica_ejections_total counter
pgwait_replica_ejections_total{db="orders",server="r1:5432"} 1
# HELP pgwait_replica_last_error_timestamp_seconds When the replica's last connection, read or probe error happened, in Unix seconds.
# TYPE pgwait_replica_last_error_timestamp_seconds gauge
pgwait_replica_last_error_timestamp_seconds{db="orders",server="r1:5432"} 1.7e+09
# HELP pgwait_replica_state 1 for the replica's current state (in_rotation, ejected, probing, promoted), 0 for the others.
# TYPE pgwait_replica_state gauge
pgwait_replica_state{db="orders",server="r1:5432",state="ejected"} 0
pgwait_replica_state{db="orders",server="r1:5432",state="in_rotation"} 0
pgwait_replica_state{db="orders",server="r1:5432",state="probing"} 1
pgwait_replica_state{db="orders",server="r1:5432",state="promoted"} 0
`,
		},
		{
			name:    "the wait histogram is cumulative",
			src:     fake{st: pgwait.Stats{WaitTime: 30 * time.Millisecond, WaitHistogram: histogram(1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)}},
			opts:    []pgwaitprom.Option{pgwaitprom.WithNamespace("app_db")},
			metrics: []string{"app_db_wait_duration_seconds"},
			want: `
# HELP app_db_wait_duration_seconds How long reads waited for their replica to replay the position they needed.
# TYPE app_db_wait_duration_seconds histogram
app_db_wait_duration_seconds_bucket{le="0.0001"} 1
app_db_wait_duration_seconds_bucket{le="0.00025"} 1
app_db_wait_duration_seconds_bucket{le="0.0005"} 3
app_db_wait_duration_seconds_bucket{le="0.001"} 3
app_db_wait_duration_seconds_bucket{le="0.0025"} 3
app_db_wait_duration_seconds_bucket{le="0.005"} 3
app_db_wait_duration_seconds_bucket{le="0.01"} 3
app_db_wait_duration_seconds_bucket{le="0.025"} 3
app_db_wait_duration_seconds_bucket{le="0.05"} 3
app_db_wait_duration_seconds_bucket{le="0.1"} 3
app_db_wait_duration_seconds_bucket{le="0.25"} 3
app_db_wait_duration_seconds_bucket{le="0.5"} 3
app_db_wait_duration_seconds_bucket{le="1"} 3
app_db_wait_duration_seconds_bucket{le="+Inf"} 4
app_db_wait_duration_seconds_sum 0.03
app_db_wait_duration_seconds_count 4
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pgwaitprom.NewCollector(tt.src, tt.opts...)
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want), tt.metrics...); err != nil {
				t.Error(err)
			}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(c)
			problems, err := testutil.GatherAndLint(reg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
		})
	}
}
