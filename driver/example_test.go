package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

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
