package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaittest"
)

// ReplicasOf tells, per replica, whether it serves reads, why it left the
// rotation if it did, its last error, how far behind it is, and what it
// served.
func ExampleReplicasOf() {
	ctx := context.Background()
	pair, err := pgwaittest.Start(ctx) // a local primary and replica; use your own DSN
	if err != nil {
		log.Fatal(err)
	}
	defer pair.Close()
	db, err := sql.Open("pgwait", pair.DSN())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.ExecContext(ctx, "CREATE TABLE t (id int)")
	db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(new(int))

	replicas, err := pgwaitdriver.ReplicasOf(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range replicas {
		fmt.Printf("state=%s reason=%q reads=%d last error=%v lag known=%v\n",
			r.State, r.Reason, r.Reads, r.LastError, r.LagBytesKnown)
	}
	// Output:
	// state=in rotation reason="" reads=1 last error=<nil> lag known=true
}

// Under pgwait_replica_discovery=dns a replica given by host name is every
// address the name resolves to, resolved again on every health interval: a
// replica fleet behind one DNS name (a Kubernetes headless service) is
// followed without restarts. Config.Resolver, here a fixed answer standing
// in for the cluster's DNS, replaces the system's resolver.
func ExampleNewConnector_discovery() {
	ctx := context.Background()
	pair, err := pgwaittest.Start(ctx) // a local primary and replica; use your own DSN
	if err != nil {
		log.Fatal(err)
	}
	defer pair.Close()
	cfg, err := pgwait.ParseConfig(pair.PrimaryDSN() + " pgwait_replicas=replicas.app.svc.cluster.local pgwait_replica_discovery=dns pgwait_health_interval=100ms")
	if err != nil {
		log.Fatal(err)
	}
	replica, err := pgx.ParseConfig(pair.ReplicaDSN())
	if err != nil {
		log.Fatal(err)
	}
	cfg.Resolver = pgwait.ResolverFunc(func(ctx context.Context, host string) ([]string, error) {
		// DNS answers addresses, which take the port given with the name;
		// an answer may also carry its own port, as here.
		return []string{pgwait.Addr(replica)}, nil
	})
	connector, err := pgwaitdriver.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	// Replicas found enter the rotation at their first good health probe.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var inRecovery bool
		if db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && inRecovery {
			break
		}
	}
	for _, r := range connector.Replicas() {
		name, _, _ := strings.Cut(r.Name, ":")
		addr, _, _ := strings.Cut(r.Addr, ":")
		fmt.Printf("%s -> %s: %s\n", name, addr, r.State)
	}
	// Output:
	// replicas.app.svc.cluster.local -> 127.0.0.1: in rotation
}

// AddReplica and RemoveReplica change the replica set of a live handle: an
// added replica serves reads from its first good health probe; a removed one
// starts no new read, and its reads in progress finish.
func ExampleConnector_AddReplica() {
	ctx := context.Background()
	pair, err := pgwaittest.Start(ctx) // a local primary and replica; use your own DSN
	if err != nil {
		log.Fatal(err)
	}
	defer pair.Close()
	cfg, err := pgwait.ParseConfig(pair.PrimaryDSN() + " pgwait_health_interval=100ms")
	if err != nil {
		log.Fatal(err)
	}
	connector, err := pgwaitdriver.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	onReplica := func() bool {
		var inRecovery bool
		return db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && inRecovery
	}
	fmt.Println("reads on a replica:", onReplica())

	replica, err := pgx.ParseConfig(pair.ReplicaDSN())
	if err != nil {
		log.Fatal(err)
	}
	if err := connector.AddReplica(pgwait.Addr(replica)); err != nil { // host:port
		log.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !onReplica() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("after AddReplica, reads on a replica:", onReplica())

	if err := connector.RemoveReplica(pgwait.Addr(replica)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after RemoveReplica, reads on a replica:", onReplica(), "replicas:", len(connector.Replicas()))
	// Output:
	// reads on a replica: false
	// after AddReplica, reads on a replica: true
	// after RemoveReplica, reads on a replica: false replicas: 0
}
