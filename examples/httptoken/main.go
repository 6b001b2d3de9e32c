// Command httptoken shows read-your-writes across HTTP requests with a
// consistency token. A middleware takes the client's token from the
// Pgwait-Token request header (or the pgwait_token cookie) into the request's
// context with pgwait.WithToken; writes the handler makes advance it, and the
// middleware sends it back in the response's Pgwait-Token header and cookie.
// The next request carries it, and its reads wait until the replica has
// replayed the client's writes, however many servers or processes lie in
// between. The DSN says pgwait_scope=token, so that only the token makes
// reads wait: reads without one go to the replica as they are.
//
// It starts a local PostgreSQL 19 primary and replica and an HTTP server on
// 127.0.0.1, then a scripted client creates items (POST /items) and reads each
// back at once (GET /items/{id}): with the token, through the header and
// through a cookie jar, every read finds its item; without it, some reads
// may miss.
//
//	go -C examples run ./httptoken
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/examples/internal/localpg"
)

// TokenHeader is the request and response header that carries the token.
const TokenHeader = "Pgwait-Token"

// tokenCookie is the cookie that carries it for browsers.
const tokenCookie = "pgwait_token"

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "httptoken:", err)
		os.Exit(1)
	}
}

// rounds is how many items each scripted client creates and reads back.
const rounds = 200

// WithConsistencyToken is the middleware. It reads the client's token from the
// Pgwait-Token header (400 Bad Request if it does not parse), else the
// pgwait_token cookie (ignored if it does not parse), and puts it into the
// request's context, so that the handler's reads wait for it and its writes
// advance it. It sends the token back, advanced, in the same header and
// cookie.
//
// Response headers go out with the status line, before the body, so the
// token must be stamped on them before the handler's first Write or
// WriteHeader: tokenWriter does that lazily, at that moment, by when the
// handler has made its writes. A handler that writes to the database after it
// has started its response cannot hand that write's token to the client.
func WithConsistencyToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tok *pgwait.Token
		if raw := r.Header.Get(TokenHeader); raw != "" {
			var err error
			if tok, err = pgwait.ParseToken(raw); err != nil {
				http.Error(w, "bad "+TokenHeader+": "+err.Error(), http.StatusBadRequest)
				return
			}
		} else if c, err := r.Cookie(tokenCookie); err == nil {
			// A cookie the client cannot fix (an old format, a corruption)
			// must not lock it out: start afresh, at the cost of consistency
			// for this one request.
			tok, _ = pgwait.ParseToken(c.Value)
		}
		if tok == nil {
			tok = new(pgwait.Token)
		}
		tw := &tokenWriter{ResponseWriter: w, tok: tok}
		next.ServeHTTP(tw, r.WithContext(pgwait.WithToken(r.Context(), tok)))
		// A handler that wrote nothing gets an implicit 200 after it returns,
		// with the headers as they are then.
		tw.stamp()
	})
}

// tokenWriter sets the token's header and cookie on the response just before
// its headers are sent.
type tokenWriter struct {
	http.ResponseWriter
	tok     *pgwait.Token
	stamped bool
}

func (w *tokenWriter) stamp() {
	if w.stamped {
		return
	}
	w.stamped = true
	s := w.tok.String()
	if s == "" { // no write yet, in this request or before: nothing to carry
		return
	}
	w.Header().Set(TokenHeader, s)
	// Behind HTTPS, add Secure: true.
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func (w *tokenWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx responses leave the headers open
		w.stamp()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tokenWriter) Write(b []byte) (int, error) {
	w.stamp()
	return w.ResponseWriter.Write(b)
}

// FlushError stamps the token, then flushes: http.ResponseController's Flush
// calls it.
func (w *tokenWriter) FlushError() error {
	w.stamp()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush,
// deadlines...).
func (w *tokenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type item struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// newMux returns the service's routes: POST /items creates an item from a
// JSON body, GET /items/{id} reads one.
func newMux(db *sql.DB) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		var it item
		if err := json.NewDecoder(r.Body).Decode(&it); err != nil || it.Name == "" {
			http.Error(w, "want a JSON body with a name", http.StatusBadRequest)
			return
		}
		// Runs on the primary and advances the request's token to its commit.
		err := db.QueryRowContext(r.Context(), "INSERT INTO items (name) VALUES ($1) RETURNING id", it.Name).Scan(&it.ID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(it)
	})
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		it := item{ID: id}
		// Runs on the replica, after it has replayed the request's token.
		err = db.QueryRowContext(r.Context(), "SELECT name FROM items WHERE id = $1", id).Scan(&it.Name)
		if errors.Is(err, sql.ErrNoRows) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(it)
	})
	return mux
}

func run(ctx context.Context, out io.Writer) error {
	cluster, dsn, err := localpg.Start(ctx, out, "pgwait_scope=token")
	if err != nil {
		return err
	}
	defer cluster.Close()

	db, err := sql.Open("pgwait", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL)"); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: WithConsistencyToken(newMux(db)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "HTTP service on %s\n\n", base)

	// Let the replica replay the CREATE TABLE: reads without a token do not
	// wait for it.
	if err := waitForTable(ctx, base); err != nil {
		return err
	}

	fmt.Fprintf(out, "%d rounds of POST /items then GET /items/{id} at once, per client:\n", rounds)
	header := &client{base: base, http: &http.Client{}, useHeader: true}
	headerMisses, err := header.rounds(ctx, "header")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %-38s %d/%d reads missed their item; last token %s\n", "token in the Pgwait-Token header:", headerMisses, rounds, header.token)

	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	cookie := &client{base: base, http: &http.Client{Jar: jar}}
	cookieMisses, err := cookie.rounds(ctx, "cookie")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %-38s %d/%d reads missed their item\n", "token in the pgwait_token cookie:", cookieMisses, rounds)

	bare := &client{base: base, http: &http.Client{}}
	bareMisses, err := bare.rounds(ctx, "bare")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %-38s %d/%d reads missed their item (replica lag; may be 0 on an idle machine)\n", "no token:", bareMisses, rounds)

	st, err := pgwaitdriver.StatsOf(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\npgwait: %d writes, %d reads on the replica, %d on the primary; %d waited, %d needed no wait, %d timed out\n",
		st.Writes, st.ReplicaReads, st.PrimaryReads, st.Waits, st.WaitsSkipped, st.WaitTimeouts)
	if headerMisses != 0 || cookieMisses != 0 {
		return fmt.Errorf("reads carrying the token missed %d items", headerMisses+cookieMisses)
	}
	return nil
}

// waitForTable polls GET /items/0 until the replica knows the table (404,
// not 500).
func waitForTable(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, _, err := do(ctx, http.DefaultClient, "GET", base+"/items/0", "", "")
		if err != nil {
			return err
		}
		if code == http.StatusNotFound {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /items/0: status %d for 30 s", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a scripted client of the service.
type client struct {
	base      string
	http      *http.Client
	useHeader bool   // carry the token in the Pgwait-Token header
	token     string // the last token the service sent, when useHeader
}

// rounds creates items and reads each back at once; it returns how many reads
// did not find their item.
func (c *client) rounds(ctx context.Context, prefix string) (misses int, err error) {
	for i := range rounds {
		code, body, tok, err := do(ctx, c.http, "POST", c.base+"/items", fmt.Sprintf(`{"name":"%s-%d"}`, prefix, i), c.sendToken())
		if err != nil {
			return misses, err
		}
		if code != http.StatusCreated {
			return misses, fmt.Errorf("POST /items: %d %s", code, body)
		}
		if c.useHeader {
			if tok == "" {
				return misses, errors.New("POST /items sent no " + TokenHeader)
			}
			c.token = tok
		}
		var it item
		if err := json.Unmarshal([]byte(body), &it); err != nil {
			return misses, fmt.Errorf("POST /items: %v: %s", err, body)
		}
		code, body, _, err = do(ctx, c.http, "GET", c.base+"/items/"+strconv.FormatInt(it.ID, 10), "", c.sendToken())
		if err != nil {
			return misses, err
		}
		switch code {
		case http.StatusOK:
		case http.StatusNotFound:
			misses++
		default:
			return misses, fmt.Errorf("GET /items/%d: %d %s", it.ID, code, body)
		}
	}
	return misses, nil
}

func (c *client) sendToken() string {
	if c.useHeader {
		return c.token
	}
	return ""
}

// do sends one request, with the token in the Pgwait-Token header if not
// empty, and returns the status, the body and the response's token.
func do(ctx context.Context, hc *http.Client, method, url, body, token string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set(TokenHeader, token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get(TokenHeader), err
}
