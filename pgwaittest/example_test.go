package pgwaittest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaittest"
)

// A test gets a primary and a replica of its own, and a pgwait *sql.DB on
// them; both are gone when the test ends.
func ExampleNew() {
	testOrders := func(t *testing.T) {
		pair := pgwaittest.New(t)
		db := pair.Open(t)
		ctx := t.Context()

		if _, err := db.ExecContext(ctx, "CREATE TABLE orders (id int PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO orders VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		var n int // read on the replica, which waits for the insert
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 1 {
			t.Fatalf("count %d, %v", n, err)
		}
	}
	_ = testOrders // func TestOrders(t *testing.T) in a _test.go file
}

// To test how an application copes with a replica that falls behind, pause
// its replay: reads that must see later writes then time out.
func ExamplePair_PauseReplay() {
	testLaggingReplica := func(t *testing.T) {
		pair := pgwaittest.New(t,
			pgwaittest.WithParam("pgwait_wait_timeout", "100ms"),
			pgwaittest.WithParam("pgwait_on_timeout", "error"))
		db := pair.Open(t)
		ctx := t.Context()
		if _, err := db.ExecContext(ctx, "CREATE TABLE jobs (id int)"); err != nil {
			t.Fatal(err)
		}

		if err := pair.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO jobs VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(new(int))
		if !errors.Is(err, pgwait.ErrWaitTimeout) {
			t.Fatalf("got %v, want a wait timeout", err)
		}
		if err := pair.ResumeReplay(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_ = testLaggingReplica // func TestLaggingReplica(t *testing.T) in a _test.go file
}

// Outside a test, for example in TestMain to share one pair among a
// package's tests, Start and Close it yourself.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pair, err := pgwaittest.Start(ctx, pgwaittest.WithParam("pgwait_scope", "token"))
	if err != nil {
		fmt.Println(err) // errors.Is(err, pgwaittest.ErrNoPostgres) without PostgreSQL 19
		return
	}
	defer pair.Close()

	db, err := sql.Open("pgwait", pair.DSN())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	// With pgwait_scope=token, only a token makes reads wait.
	tok, _ := pgwait.ParseToken("")
	tctx := pgwait.WithToken(ctx, tok)
	if _, err := db.ExecContext(tctx, "CREATE TABLE notes AS SELECT 'hello' AS body"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("token advanced:", tok.LSN() != 0)

	var body string
	var onReplica bool
	err = db.QueryRowContext(tctx, "SELECT body, pg_is_in_recovery() FROM notes").Scan(&body, &onReplica)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(body, "read on the replica:", onReplica)
	// Output:
	// token advanced: true
	// hello read on the replica: true
}
