package driver

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/tracker"
)

func TestParseLag(t *testing.T) {
	tests := []struct {
		in    []byte
		want  time.Duration
		known bool
	}{
		{nil, 0, false},
		{[]byte("0"), 0, true},
		{[]byte("1.5"), 1500 * time.Millisecond, true},
		{[]byte("0.000250"), 250 * time.Microsecond, true},
		{[]byte("-0.2"), 0, true}, // the replica's clock behind the primary's
		{[]byte("NaN"), 0, false},
		{[]byte("x"), 0, false},
	}
	for _, tt := range tests {
		got, known := parseLag(tt.in)
		assert.Equal(t, tt.want, got, "%q", tt.in)
		assert.Equal(t, tt.known, known, "%q", tt.in)
	}
}

func TestStatusOf(t *testing.T) {
	now := time.Now()
	since := now.Add(-time.Minute)
	tests := []struct {
		name      string
		ts        tracker.ReplicaState
		primary   tracker.LSN
		state     pgwait.ReplicaState
		reason    string
		needs     pgwait.LSN
		lag       uint64
		lagKnown  bool
		sinceWant time.Time
	}{
		{"in rotation, caught up", tracker.ReplicaState{Replayed: 100}, 100, pgwait.ReplicaInRotation, "", 0, 0, true, time.Time{}},
		{"in rotation, behind", tracker.ReplicaState{Replayed: 100}, 164, pgwait.ReplicaInRotation, "", 0, 64, true, time.Time{}},
		{"position unknown", tracker.ReplicaState{}, 164, pgwait.ReplicaInRotation, "", 0, 0, false, time.Time{}},
		{"failed, in backoff", tracker.ReplicaState{Reason: tracker.Failed, Since: since, RetryAt: now.Add(time.Second)}, 0, pgwait.ReplicaEjected, "failed", 0, 0, false, since},
		{"failed, due for a probe", tracker.ReplicaState{Reason: tracker.Failed, Since: since, RetryAt: now}, 0, pgwait.ReplicaProbing, "failed", 0, 0, false, since},
		{"behind", tracker.ReplicaState{Reason: tracker.Behind, Since: since, Needs: 90, Replayed: 80, RetryAt: now.Add(-time.Second)}, 100, pgwait.ReplicaProbing, "behind", 90, 20, true, since},
		{"promoted", tracker.ReplicaState{Reason: tracker.Promoted, Since: since, RetryAt: now.Add(time.Hour)}, 0, pgwait.ReplicaPromoted, "promoted", 0, 0, false, since},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &replica{addr: "r:5432"}
			r.status.reads.Add(3)
			r.status.failed(errors.New("boom"))
			st := statusOf(r, tt.ts, tt.primary, now)
			assert.Equal(t, "r:5432", st.Addr)
			assert.Equal(t, tt.state, st.State)
			assert.Equal(t, tt.reason, st.Reason)
			assert.Equal(t, tt.sinceWant, st.Since)
			assert.Equal(t, tt.needs, st.Needs)
			assert.Equal(t, tt.lag, st.LagBytes)
			assert.Equal(t, tt.lagKnown, st.LagBytesKnown)
			assert.Equal(t, uint64(3), st.Reads)
			assert.EqualError(t, st.LastError, "boom")
		})
	}
}
