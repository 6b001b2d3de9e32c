// Command httptoken shows read-your-writes across HTTP requests with a
// consistency token. The pgwaithttp middleware takes the client's token from
// the Pgwait-Token request header (or the pgwait_token cookie) into the
// request's context with pgwait.WithToken; writes the handler makes advance
// it, and the middleware sends it back in the response's Pgwait-Token header
// and cookie.
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

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/examples/internal/localpg"
	"github.com/pgwait/pgwait/pgwaithttp"
)

// TokenHeader is the request and response header that carries the token.
const TokenHeader = pgwaithttp.DefaultHeader

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "httptoken:", err)
		os.Exit(1)
	}
}

// rounds is how many items each scripted client creates and reads back.
const rounds = 200

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
	srv := &http.Server{Handler: pgwaithttp.Middleware()(newMux(db)), ReadHeaderTimeout: 10 * time.Second}
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
