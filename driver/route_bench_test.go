package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"testing"
	"time"

	"github.com/pgwait/pgwait"
)

// BenchmarkRoutingWork measures pgwait's own work for one read, with no
// server: what the driver does between database/sql handing it a query and
// the query leaving for a replica. That is turning the arguments into pgx's
// (arguments), classifying the statement (through the connection's cache,
// as a repeated query is), deciding it goes to a replica (toReplica),
// computing what it must see by its level (plan), picking a replica
// (tracker Pick), deciding it needs no wait (NeedsWait) and recording the
// read (ReplicaRead). Four replicas, all known to have replayed everything.
// It runs in parallel: with -cpu 1,2,8 it shows what the handle-wide state
// costs under contention. The package's TestMain starts its shared cluster
// first; the benchmark itself never touches it.
//
//	go test ./driver -run '^$' -bench RoutingWork -benchmem -cpu 1,2,8
func BenchmarkRoutingWork(b *testing.B) {
	cfg, err := pgwait.ParseConfig("host=127.0.0.1 port=1 user=bench dbname=bench pgwait_replicas=127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5")
	if err != nil {
		b.Fatal(err)
	}
	const query = "SELECT id, name, email FROM users WHERE id = $1"
	named := []sqldriver.NamedValue{{Ordinal: 1, Value: int64(42)}}
	for _, bc := range []struct {
		name  string
		level pgwait.Level
		wrote bool // the handle has written: reads have a position to see
	}{
		{"ryw", pgwait.ReadYourWrites, false},
		{"ryw-after-write", pgwait.ReadYourWrites, true},
		{"eventual", pgwait.Eventual, false},
		{"bounded", pgwait.BoundedStaleness(5 * time.Second), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := NewConnector(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			now := time.Now()
			c.track.ObservePrimaryPosition(1<<40, now)
			for i := range c.replicaList() {
				c.track.ProbeOK(i, 1<<40, "a", now)
			}
			if bc.wrote {
				c.track.PrimaryAnswered(c.track.NewSession(), 1<<30, false)
			}
			ctx := pgwait.WithLevel(context.Background(), bc.level)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				conn := &Conn{c: c, session: c.track.NewSession()}
				for pb.Next() {
					ctx, q, args, err := arguments(ctx, query, named)
					if err != nil || len(args) != 1 {
						b.Fatal(err)
					}
					if !conn.toReplica(ctx, conn.classify(q)) {
						b.Fatal("not routed to a replica")
					}
					tg, maxStale, err := conn.plan(ctx)
					if err != nil {
						b.Fatal(err)
					}
					i := c.track.Pick(conn.session, tg.LSN, maxStale)
					if i < 0 || c.track.NeedsWait(i, tg.LSN) {
						b.Fatalf("picked replica %d, which needs a wait for %v", i, tg.LSN)
					}
					c.track.ReplicaRead(conn.session, i, tg.LSN)
				}
			})
		})
	}
}
