package tracker

import (
	"testing"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
)

// BenchmarkReadRouting measures pgwait's own work for one replica read that
// needs no wait, with no server: classifying the statement, computing its
// target, picking a replica, deciding it needs no wait and recording the
// read. Run in parallel it shows what the tracker's one lock costs under
// contention:
//
//	go test -run '^$' -bench ReadRouting -cpu 1,2,8 ./internal/tracker/
func BenchmarkReadRouting(b *testing.B) {
	tr := New(Config{Scope: pgwait.ScopeHandle, Replicas: 4, HealthInterval: time.Second})
	for i := range 4 {
		tr.ProbeOK(i, 1<<40, "a", time.Now())
	}
	const query = "SELECT id, name, email FROM users WHERE id = $1"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := tr.NewSession()
		for pb.Next() {
			if classify.Classify(query).Kind != classify.Read {
				b.Fatal("not a read")
			}
			tg := tr.Target(s, Token{}, false)
			i := tr.Pick(s, tg.LSN, 0)
			if tr.NeedsWait(i, tg.LSN) {
				b.Fatal("needs a wait")
			}
			tr.ReplicaRead(s, i, tg.LSN)
		}
	})
}
