package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/examples/internal/smoke"
)

func TestRun(t *testing.T) {
	out := smoke.Run(t, run)
	for _, want := range []string{
		"token in the Pgwait-Token header:      0/",
		"token in the pgwait_token cookie:      0/",
		"no token:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// handler hands respond the request's token, which a write would advance.
func handler(respond func(w http.ResponseWriter, tok *pgwait.Token)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := pgwait.TokenFrom(r.Context())
		if tok == nil {
			http.Error(w, "no token in the context", http.StatusInternalServerError)
			return
		}
		respond(w, tok)
	})
}

// serve sends req to a test server running h behind the middleware.
func serve(t *testing.T, h http.Handler, req *http.Request) *http.Response {
	t.Helper()
	srv := httptest.NewServer(WithConsistencyToken(h))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Scheme, req.URL.Host, req.RequestURI = u.Scheme, u.Host, ""
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestMiddleware(t *testing.T) {
	const lsn = pgwait.LSN(0x16B374D848)
	for _, tc := range []struct {
		name    string
		respond func(w http.ResponseWriter, tok *pgwait.Token)
	}{
		{"WriteHeader", func(w http.ResponseWriter, tok *pgwait.Token) {
			tok.Advance(lsn)
			w.WriteHeader(http.StatusCreated)
		}},
		{"Write", func(w http.ResponseWriter, tok *pgwait.Token) {
			tok.Advance(lsn)
			io.WriteString(w, "ok")
		}},
		{"nothing", func(w http.ResponseWriter, tok *pgwait.Token) { tok.Advance(lsn) }},
		{"1xx before the write", func(w http.ResponseWriter, tok *pgwait.Token) {
			w.WriteHeader(http.StatusEarlyHints)
			tok.Advance(lsn)
			w.WriteHeader(http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := serve(t, handler(tc.respond), httptest.NewRequest("POST", "/items", nil))
			if got := resp.Header.Get(TokenHeader); got != pgwait.NewToken(lsn).String() {
				t.Errorf("%s header %q, want %q", TokenHeader, got, pgwait.NewToken(lsn).String())
			}
			var cookie string
			for _, c := range resp.Cookies() {
				if c.Name == tokenCookie {
					cookie = c.Value
				}
			}
			if cookie != pgwait.NewToken(lsn).String() {
				t.Errorf("cookie %q, want %q", cookie, pgwait.NewToken(lsn).String())
			}
		})
	}
}

func TestMiddlewareCarriesTheClientsToken(t *testing.T) {
	const client, older = pgwait.LSN(0x3000060), pgwait.LSN(0x2000000)
	for _, carry := range []string{"header", "cookie"} {
		req := httptest.NewRequest("GET", "/items/1", nil)
		if carry == "header" {
			req.Header.Set(TokenHeader, pgwait.NewToken(client).String())
		} else {
			req.AddCookie(&http.Cookie{Name: tokenCookie, Value: pgwait.NewToken(client).String()})
		}
		var seen pgwait.LSN
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = pgwait.TokenFrom(r.Context()).LSN()
			pgwait.TokenFrom(r.Context()).Advance(older) // a token never moves back
		})
		resp := serve(t, h, req)
		if seen != client {
			t.Errorf("%s: the handler's token is at %v, want the client's %v", carry, seen, client)
		}
		if got := resp.Header.Get(TokenHeader); got != pgwait.NewToken(client).String() {
			t.Errorf("%s: response token %q, want %q", carry, got, pgwait.NewToken(client).String())
		}
	}
}

func TestMiddlewareWithoutToken(t *testing.T) {
	resp := serve(t, handler(func(w http.ResponseWriter, _ *pgwait.Token) { io.WriteString(w, "ok") }), httptest.NewRequest("GET", "/items/1", nil))
	if got := resp.Header.Get(TokenHeader); got != "" {
		t.Errorf("no write, no token in: response token %q, want none", got)
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("cookies %v, want none", resp.Cookies())
	}
}

func TestMiddlewareBadToken(t *testing.T) {
	req := httptest.NewRequest("GET", "/items/1", nil)
	req.Header.Set(TokenHeader, "not-an-lsn")
	called := false
	resp := serve(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }), req)
	if resp.StatusCode != http.StatusBadRequest || called {
		t.Errorf("bad token: status %d, handler called %v; want 400 without the handler", resp.StatusCode, called)
	}
}

func TestResponseController(t *testing.T) {
	// http.ResponseController's Flush sends the headers: with the token.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pgwait.TokenFrom(r.Context()).Advance(0x100)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the middleware: %v", err)
		}
	})
	resp := serve(t, h, httptest.NewRequest("POST", "/items", nil))
	if resp.Header.Get(TokenHeader) == "" {
		t.Error("Flush sent the headers without the token")
	}
}

func TestMiddlewareIgnoresBadCookie(t *testing.T) {
	req := httptest.NewRequest("POST", "/items", nil)
	req.AddCookie(&http.Cookie{Name: tokenCookie, Value: "garbage"})
	resp := serve(t, handler(func(w http.ResponseWriter, tok *pgwait.Token) {
		if tok.LSN() != 0 {
			t.Errorf("a bad cookie gave the handler token %v, want an empty one", tok.LSN())
		}
		tok.Advance(0x200)
	}), req)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(TokenHeader) != pgwait.NewToken(0x200).String() {
		t.Errorf("bad cookie: status %d, token %q; want 200 and a fresh token", resp.StatusCode, resp.Header.Get(TokenHeader))
	}
}
