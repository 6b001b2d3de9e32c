package pgwaithttp_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaithttp"
	"github.com/pgwait/pgwait/pgwaittest"
)

// itemsService answers POST /items (insert) and GET /items (count) on db.
func itemsService(db *sql.DB) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		if _, err := db.ExecContext(r.Context(), "INSERT INTO items VALUES (1)"); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
		var n string
		if err := db.QueryRowContext(r.Context(), "SELECT count(*)::text FROM items").Scan(&n); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write([]byte(n))
	})
	return pgwaithttp.Middleware()(mux)
}

func send(t *testing.T, ctx context.Context, c *http.Client, method, url string, header string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(pgwaithttp.DefaultHeader, header)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestAgainstServers: a client that carries the token reads its write over
// HTTP even while the replica lags; a forged token costs no wait timeout and
// comes back reset.
func TestAgainstServers(t *testing.T) {
	pair := pgwaittest.New(t,
		pgwaittest.WithParam("pgwait_scope", "token"),
		pgwaittest.WithParam("pgwait_wait_timeout", "2s"),
		pgwaittest.WithParam("pgwait_health_interval", "50ms"))
	db := pair.Open(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE items (id int)"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(itemsService(db))
	defer srv.Close()
	client := &http.Client{Transport: &pgwaithttp.Transport{Base: srv.Client().Transport}}

	// The replica replays the insert half a second late: the read waits
	// for it rather than missing it.
	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	tok := new(pgwait.Token)
	tctx := pgwait.WithToken(ctx, tok)
	if resp, body := send(t, tctx, client, "POST", srv.URL+"/items", ""); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /items: %d %s", resp.StatusCode, body)
	}
	if tok.LSN() == 0 {
		t.Fatal("the Transport did not advance the caller's token from the response")
	}
	time.AfterFunc(500*time.Millisecond, func() { pair.ResumeReplay(context.Background()) })
	if _, body := send(t, tctx, client, "GET", srv.URL+"/items", ""); body != "1" {
		t.Errorf("GET /items with the token: %q, want 1", body)
	}
	connector, err := driver.ConnectorOf(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if st := connector.Stats(); st.Waits == 0 || st.Fallbacks != 0 || st.ReplicaReads == 0 {
		t.Errorf("the read did not wait on the replica: %+v", st)
	}

	// A forged token, far ahead of the primary, is reset: no wait timeout.
	start := time.Now()
	resp, body := send(t, ctx, http.DefaultClient, "GET", srv.URL+"/items", "FFFFFFFF/FFFFFFFF")
	if resp.StatusCode != 200 || body != "1" {
		t.Fatalf("GET /items with a forged token: %d %q", resp.StatusCode, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a forged token cost %v, more than a round trip", took)
	}
	back, err := pgwait.ParseToken(resp.Header.Get(pgwaithttp.DefaultHeader))
	if err != nil || back.LSN() >= pgwait.LSN(1<<63) {
		t.Errorf("the response's token %q (%v) was not reset", resp.Header.Get(pgwaithttp.DefaultHeader), err)
	}
	if st := connector.Stats(); st.TokensReset != 1 {
		t.Errorf("TokensReset = %d, want 1", st.TokensReset)
	}

	// An unparsable header is refused before any query.
	if resp, _ := send(t, ctx, http.DefaultClient, "GET", srv.URL+"/items", "'; DROP TABLE items"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unparsable token: status %d, want 400", resp.StatusCode)
	}
	if err := db.QueryRowContext(ctx, "SELECT 1 FROM items LIMIT 1").Scan(new(int)); errors.Is(err, sql.ErrNoRows) {
		t.Error("items is empty")
	}
}
