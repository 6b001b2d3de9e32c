package pgwaithttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaithttp"
)

// The middleware puts the client's token into each request's context; the
// handler's writes (here, a stand-in for one) advance it, and it goes back
// in the response. A Go client carries it with Transport.
func ExampleMiddleware() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := pgwait.TokenFrom(r.Context())
		fmt.Println("handler reads wait for:", tok.LSN())
		// db.ExecContext(r.Context(), "INSERT ...") advances tok to its commit:
		tok.Advance(tok.LSN() + 0x100)
	})
	srv := httptest.NewServer(pgwaithttp.Middleware()(handler))
	defer srv.Close()

	tok := pgwait.NewToken(0x3000060)
	ctx := pgwait.WithToken(context.Background(), tok)
	client := &http.Client{Transport: &pgwaithttp.Transport{}}
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("response header:", resp.Header.Get(pgwaithttp.DefaultHeader))
	fmt.Println("caller's token:", tok)
	// Output:
	// handler reads wait for: 0/3000060
	// response header: 0/3000160
	// caller's token: 0/3000160
}
