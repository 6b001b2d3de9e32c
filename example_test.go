package pgwait_test

import (
	"context"
	"fmt"

	"github.com/pgwait/pgwait"
)

func ExampleParseConfig() {
	cfg, err := pgwait.ParseConfig("postgres://app:secret@db1:5432/app?pgwait_replicas=db2,db3:5433&pgwait_wait_timeout=250ms")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("primary:", pgwait.Addr(cfg.Primary))
	for _, r := range cfg.Replicas {
		fmt.Println("replica:", pgwait.Addr(r), "as", r.User)
	}
	fmt.Println("wait timeout:", cfg.WaitTimeout, "then", cfg.OnTimeout)
	// Output:
	// primary: db1:5432
	// replica: db2:5432 as app
	// replica: db3:5433 as app
	// wait timeout: 250ms then primary
}

func ExampleParseConfig_error() {
	_, err := pgwait.ParseConfig("postgres://app:secret@db1/app?pgwait_on_timeout=retry")
	fmt.Println(err)
	// Output:
	// pgwait: pgwait_on_timeout="retry": want primary or error
}

// A token carries a user's consistency point from one request to the next,
// for example in a cookie: reads made with it wait for the user's own writes,
// on any server and in any process.
func ExampleWithToken() {
	// Request 1: no token yet.
	tok, _ := pgwait.ParseToken("")
	ctx := pgwait.WithToken(context.Background(), tok)
	_ = ctx // db.ExecContext(ctx, "UPDATE ...") advances tok to the commit's LSN.
	tok.Advance(0x16B374D848)
	cookie := tok.String()
	fmt.Println("set cookie:", cookie)

	// Request 2: the cookie comes back.
	tok2, err := pgwait.ParseToken(cookie)
	if err != nil {
		fmt.Println("bad cookie:", err)
		return
	}
	ctx2 := pgwait.WithToken(context.Background(), tok2)
	fmt.Println("reads wait for:", pgwait.TokenFrom(ctx2).LSN())
	// Output:
	// set cookie: 16/b374d848
	// reads wait for: 16/b374d848
}

func ExampleOnPrimary() {
	ctx := pgwait.OnPrimary(context.Background())
	fmt.Println(pgwait.RouteFrom(ctx))
	// Output: primary
}

// Behind PgBouncer in transaction pooling (before 1.21, or without
// max_prepared_statements), choose an exec mode that leaves no named
// prepared statement on the server. In the default mode, statements that
// lose theirs fail with an error matching ErrPoolerPreparedStatements, which
// says so.
func ExampleParseConfig_transactionPooling() {
	cfg, err := pgwait.ParseConfig("postgres://app@pgbouncer:6432/app?default_query_exec_mode=exec&pgwait_replicas=pgbouncer-ro:6432")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("primary:", cfg.Primary.DefaultQueryExecMode)
	fmt.Println("replica:", cfg.Replicas[0].DefaultQueryExecMode)
	// Output:
	// primary: exec
	// replica: exec
}
