package pgwaithttp_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaithttp"
)

const lsn = pgwait.LSN(0x16B374D848)

var want = pgwait.NewToken(lsn).String()

// advance is a handler that advances the request's token to lsn, as a write
// would, then answers with respond.
func advance(respond func(w http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pgwait.TokenFrom(r.Context()).Advance(lsn)
		respond(w)
	})
}

// serve runs h behind the middleware with opts on a test server, sends req
// and returns the response, its body read.
func serve(t *testing.T, h http.Handler, req *http.Request, opts ...pgwaithttp.Option) *http.Response {
	t.Helper()
	srv := httptest.NewServer(pgwaithttp.Middleware(opts...)(h))
	defer srv.Close()
	r, err := http.NewRequestWithContext(req.Context(), req.Method, srv.URL+req.URL.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header = req.Header
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func cookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// The token reaches the response however the handler starts it.
func TestStampedBeforeHeadersGo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(w http.ResponseWriter)
	}{
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(http.StatusCreated) }},
		{"Write", func(w http.ResponseWriter) { io.WriteString(w, "ok") }},
		{"nothing", func(http.ResponseWriter) {}},
		{"Flush", func(w http.ResponseWriter) { http.NewResponseController(w).Flush() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := serve(t, advance(tc.respond), httptest.NewRequest("POST", "/items", nil))
			if got := resp.Header.Get(pgwaithttp.DefaultHeader); got != want {
				t.Errorf("header %q, want %q", got, want)
			}
			c := cookie(resp, pgwaithttp.DefaultCookie)
			if c == nil || c.Value != want || !c.HttpOnly || c.Path != "/" {
				t.Errorf("cookie %v, want %s=%s; Path=/; HttpOnly", c, pgwaithttp.DefaultCookie, want)
			}
		})
	}
}

// A 1xx response leaves the headers open: a write after it still counts.
func TestEarlyHints(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		pgwait.TokenFrom(r.Context()).Advance(lsn)
		w.WriteHeader(http.StatusOK)
	})
	if got := serve(t, h, httptest.NewRequest("POST", "/", nil)).Header.Get(pgwaithttp.DefaultHeader); got != want {
		t.Errorf("header %q, want %q", got, want)
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		cookie     string
		opts       []pgwaithttp.Option
		wantStatus int
		wantSeen   string // the handler's token; "-" when it must not run
	}{
		{"none", "", "", nil, 200, ""},
		{"header", "0/3000060@2", "", nil, 200, "0/3000060@2"},
		{"cookie", "", "0/3000060", nil, 200, "0/3000060"},
		{"the header wins", "0/3000060", "0/4000000", nil, 200, "0/3000060"},
		{"bad header", "not-an-lsn", "", nil, 400, "-"},
		{"bad cookie starts afresh", "", "garbage", nil, 200, ""},
		{"too long", strings.Repeat("0", 65), "", nil, 400, "-"},
		{"shorter limit", "0/3000060@2", "", []pgwaithttp.Option{pgwaithttp.WithMaxLen(10)}, 400, "-"},
		{"at the limit", "0/3000060@2", "", []pgwaithttp.Option{pgwaithttp.WithMaxLen(11)}, 200, "0/3000060@2"},
		{"validation refuses", "0/3000060", "", []pgwaithttp.Option{pgwaithttp.WithValidate(func(*http.Request, *pgwait.Token) error { return errors.New("not yours") })}, 400, "-"},
		{"validation refuses a cookie", "", "0/3000060", []pgwaithttp.Option{pgwaithttp.WithValidate(func(*http.Request, *pgwait.Token) error { return errors.New("not yours") })}, 200, ""},
		{"custom error answer", "x", "", []pgwaithttp.Option{pgwaithttp.WithErrorHandler(func(w http.ResponseWriter, _ *http.Request, err error) {
			w.WriteHeader(http.StatusUnprocessableEntity)
		})}, 422, "-"},
		{"header off", "0/3000060", "", []pgwaithttp.Option{pgwaithttp.WithHeader("")}, 200, ""},
		{"cookie off", "", "0/3000060", []pgwaithttp.Option{pgwaithttp.WithCookie(nil)}, 200, ""},
		{"renamed header", "", "", []pgwaithttp.Option{pgwaithttp.WithHeader("X-Consistency")}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				req.Header.Set(pgwaithttp.DefaultHeader, tt.header)
			}
			if tt.cookie != "" {
				req.AddCookie(&http.Cookie{Name: pgwaithttp.DefaultCookie, Value: tt.cookie})
			}
			seen := "-"
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = pgwait.TokenFrom(r.Context()).String()
			})
			resp := serve(t, h, req, tt.opts...)
			if resp.StatusCode != tt.wantStatus || seen != tt.wantSeen {
				t.Errorf("status %d, handler's token %q; want %d, %q", resp.StatusCode, seen, tt.wantStatus, tt.wantSeen)
			}
		})
	}
}

func TestBadHeaderSaysWhatToDo(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set(pgwaithttp.DefaultHeader, strings.Repeat("9", 100))
	srv := httptest.NewServer(pgwaithttp.Middleware()(http.NotFoundHandler()))
	defer srv.Close()
	r, _ := http.NewRequest("GET", srv.URL, nil)
	r.Header = req.Header
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "at most 64") || !strings.Contains(string(body), "Pgwait-Token") {
		t.Errorf("error %q does not say the limit and the header", body)
	}
}

func TestOptionsShapeTheResponse(t *testing.T) {
	resp := serve(t, advance(func(http.ResponseWriter) {}), httptest.NewRequest("POST", "/", nil),
		pgwaithttp.WithHeader("x-consistency"),
		pgwaithttp.WithCookie(&http.Cookie{Name: "c", Path: "/api", Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600}))
	if got := resp.Header.Get("X-Consistency"); got != want {
		t.Errorf("X-Consistency %q, want %q", got, want)
	}
	if resp.Header.Get(pgwaithttp.DefaultHeader) != "" {
		t.Error("the default header is still set")
	}
	c := cookie(resp, "c")
	if c == nil || c.Value != want || c.Path != "/api" || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.MaxAge != 3600 {
		t.Errorf("cookie %+v, want the template's attributes", c)
	}
}

func TestNoTokenNoWriteNothingSent(t *testing.T) {
	resp := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), httptest.NewRequest("GET", "/", nil))
	if resp.Header.Get(pgwaithttp.DefaultHeader) != "" || len(resp.Cookies()) != 0 {
		t.Errorf("header %q, cookies %v; want none", resp.Header.Get(pgwaithttp.DefaultHeader), resp.Cookies())
	}
}

func TestTransport(t *testing.T) {
	var got string
	srv := httptest.NewServer(pgwaithttp.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get(pgwaithttp.DefaultHeader)
		pgwait.TokenFrom(r.Context()).Advance(lsn)
	})))
	defer srv.Close()
	client := &http.Client{Transport: &pgwaithttp.Transport{Base: srv.Client().Transport}}
	tests := []struct {
		name     string
		tok      *pgwait.Token
		wantSent string
		wantTok  string
	}{
		{"empty token: nothing sent, advanced from the answer", new(pgwait.Token), "", want},
		{"sent and advanced", pgwait.NewToken(0x100), "0/100", want},
		{"later than the answer: kept", pgwait.NewToken(lsn + 1), pgwait.NewToken(lsn + 1).String(), pgwait.NewToken(lsn + 1).String()},
		{"no token: the request goes as it is", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.tok != nil {
				ctx = pgwait.WithToken(ctx, tt.tok)
			}
			req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got != tt.wantSent {
				t.Errorf("sent %q, want %q", got, tt.wantSent)
			}
			if req.Header.Get(pgwaithttp.DefaultHeader) != "" {
				t.Error("the caller's request was changed")
			}
			if s := tt.tok.String(); s != tt.wantTok {
				t.Errorf("token %q after, want %q", s, tt.wantTok)
			}
		})
	}
}
