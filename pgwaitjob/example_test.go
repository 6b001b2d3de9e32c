package pgwaitjob_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaitjob"
	"github.com/pgwait/pgwait/pgwaittest"
)

// emailJob is a job's payload, with the token of the writes it follows.
type emailJob struct {
	OrderID int    `json:"order_id"`
	Token   string `json:"pgwait_token,omitempty"`
}

// A request writes and enqueues a job; the worker restores the token, and
// retries later while no replica has the order, rather than read the
// primary.
func Example() {
	ctx := context.Background()
	pair, err := pgwaittest.Start(ctx, pgwaittest.WithParam("pgwait_scope", "token")) // use your own DSN
	if err != nil {
		log.Fatal(err)
	}
	defer pair.Close()
	db, err := sql.Open("pgwait", pair.DSN())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.ExecContext(ctx, "CREATE TABLE orders (id int)")
	pair.CatchUp(ctx)
	pair.PauseReplay(ctx) // the replica falls behind

	// The request: write, then enqueue with the token.
	reqCtx := pgwait.WithToken(ctx, new(pgwait.Token))
	db.ExecContext(reqCtx, "INSERT INTO orders VALUES (42)")
	msg, _ := json.Marshal(emailJob{OrderID: 42, Token: pgwaitjob.Save(reqCtx)})

	// The worker.
	work := func() error {
		var job emailJob
		if err := json.Unmarshal(msg, &job); err != nil {
			return err
		}
		ctx, err := pgwaitjob.Restore(ctx, job.Token)
		if err != nil {
			return err
		}
		if err := pgwaitjob.Ready(ctx, db, 200*time.Millisecond); err != nil {
			return err
		}
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM orders WHERE id = $1", job.OrderID).Scan(&n)
		fmt.Println("order found:", n == 1)
		return err
	}
	if err := work(); errors.Is(err, pgwaitjob.ErrRetryLater) {
		fmt.Println("retry later")
	}
	pair.ResumeReplay(ctx) // the replica catches up
	if err := work(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// retry later
	// order found: true
}
