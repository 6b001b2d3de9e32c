// Package pgwaithttp carries pgwait consistency tokens over HTTP, so that a
// client that wrote through one request reads its writes in the next, on
// whichever server or process serves it.
//
// On the server, Middleware reads the client's token from a request header
// (Pgwait-Token) or a cookie (pgwait_token) into the request's context with
// pgwait.WithToken; reads the handler makes with that context wait for it,
// and writes advance it; the middleware sends the advanced token back in the
// same header and cookie:
//
//	mux := http.NewServeMux()
//	...
//	http.ListenAndServe(addr, pgwaithttp.Middleware()(mux))
//
// On a client that calls such a service, Transport does the same for
// outgoing requests: it sends the token of the request's context and
// advances it from the response.
//
// A token's text comes from the client, so it is never trusted: the
// middleware refuses one longer than the size limit or that does not parse
// (400 Bad Request for a header, a fresh token for a cookie), and runs an
// optional validation of your own (bind it to a session, check a signature).
// A token that passes is still checked by the driver: one ahead of every
// position the primary has reached is reset to the handle's position, so a
// forged token costs at most one primary round trip and a read's wait
// timeout (see pgwait's "Tokens" documentation). Use pgwait_scope=token so
// that requests without a token do not wait for other clients' writes.
package pgwaithttp

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pgwait/pgwait"
)

// Defaults of the middleware's options.
const (
	// DefaultHeader is the request and response header that carries the
	// token.
	DefaultHeader = "Pgwait-Token"
	// DefaultCookie is the cookie that carries it.
	DefaultCookie = "pgwait_token"
	// DefaultMaxLen is the longest token text accepted, in bytes: a
	// pgwait token takes at most 28 ("FFFFFFFF/FFFFFFFF@4294967295").
	DefaultMaxLen = 64
)

// ErrTooLong is wrapped by the error of a token longer than the size limit.
var ErrTooLong = errors.New("pgwaithttp: token too long")

// An Option configures Middleware.
type Option func(*config)

type config struct {
	header   string
	cookie   *http.Cookie // template; nil: no cookie
	maxLen   int
	validate func(*http.Request, *pgwait.Token) error
	onError  func(http.ResponseWriter, *http.Request, error)
}

// WithHeader names the header that carries the token; "" carries none in a
// header.
func WithHeader(name string) Option {
	return func(c *config) { c.header = http.CanonicalHeaderKey(name) }
}

// WithCookie sets the cookie that carries the token: its Name, and the
// attributes the response's cookie gets (Path, Domain, MaxAge, Secure,
// HttpOnly, SameSite); its Value is ignored. nil carries none in a cookie.
// The default is a cookie named pgwait_token, Path "/", HttpOnly, SameSite
// Lax, without Secure: behind HTTPS, pass one with Secure set.
func WithCookie(template *http.Cookie) Option {
	return func(c *config) {
		if template == nil || template.Name == "" {
			c.cookie = nil
			return
		}
		t := *template
		c.cookie = &t
	}
}

// WithMaxLen sets the longest token text accepted, in bytes (default
// DefaultMaxLen).
func WithMaxLen(n int) Option {
	return func(c *config) { c.maxLen = n }
}

// WithValidate adds a check of your own, run on every token that parsed,
// before the handler: an error makes the token invalid, as if it had not
// parsed. Use it to bind tokens to a session, or to check a signature you
// add to them.
func WithValidate(f func(*http.Request, *pgwait.Token) error) Option {
	return func(c *config) { c.validate = f }
}

// WithErrorHandler replaces the answer to an invalid token in the header
// (default: 400 Bad Request with the error's text). The handler must write
// the response; the request's own handler does not run. An invalid cookie
// never reaches it: it is replaced by an empty token, so that a client that
// cannot change its cookies is not locked out.
func WithErrorHandler(f func(http.ResponseWriter, *http.Request, error)) Option {
	return func(c *config) { c.onError = f }
}

// Middleware returns middleware that carries the token of each request, as
// the package documentation describes. Without options it uses the header
// DefaultHeader and the cookie DefaultCookie.
//
// The response's headers go out before its body, so the token is set on
// them at the handler's first Write, WriteHeader (with a status of 200 or
// more) or Flush, or when it returns: a write the handler makes to the
// database after it has started its response cannot reach the client.
func Middleware(opts ...Option) func(http.Handler) http.Handler {
	cfg := config{
		header: DefaultHeader,
		cookie: &http.Cookie{Name: DefaultCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode},
		maxLen: DefaultMaxLen,
		onError: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadRequest)
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, err := cfg.fromRequest(r)
			if err != nil {
				cfg.onError(w, r, err)
				return
			}
			tw := &tokenWriter{ResponseWriter: w, cfg: &cfg, tok: tok}
			next.ServeHTTP(tw, r.WithContext(pgwait.WithToken(r.Context(), tok)))
			// A handler that wrote nothing gets an implicit 200 after it
			// returns, with the headers as they are then.
			tw.stamp()
		})
	}
}

// fromRequest returns the request's token: from the header if it has one
// (an error if it is invalid), else from the cookie (an empty token if it is
// invalid), else an empty token.
func (c *config) fromRequest(r *http.Request) (*pgwait.Token, error) {
	if c.header != "" {
		if raw := r.Header.Get(c.header); raw != "" {
			tok, err := c.parse(r, raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.header, err)
			}
			return tok, nil
		}
	}
	if c.cookie != nil {
		if ck, err := r.Cookie(c.cookie.Name); err == nil {
			if tok, err := c.parse(r, ck.Value); err == nil {
				return tok, nil
			}
		}
	}
	return new(pgwait.Token), nil
}

func (c *config) parse(r *http.Request, raw string) (*pgwait.Token, error) {
	if c.maxLen > 0 && len(raw) > c.maxLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d; send the text the %s response header or cookie held, or none", ErrTooLong, len(raw), c.maxLen, c.header)
	}
	tok, err := pgwait.ParseToken(raw)
	if err != nil {
		return nil, err
	}
	if c.validate != nil {
		if err := c.validate(r, tok); err != nil {
			return nil, fmt.Errorf("pgwaithttp: token refused: %w", err)
		}
	}
	return tok, nil
}

// tokenWriter sets the token's header and cookie on the response just before
// its headers are sent.
type tokenWriter struct {
	http.ResponseWriter
	cfg     *config
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
	if w.cfg.header != "" {
		w.Header().Set(w.cfg.header, s)
	}
	if w.cfg.cookie != nil {
		ck := *w.cfg.cookie
		ck.Value = s
		http.SetCookie(w, &ck)
	}
}

// WriteHeader stamps the token on a final (not 1xx) response's headers, then
// writes them.
func (w *tokenWriter) WriteHeader(code int) {
	if code >= 200 { // 1xx responses leave the headers open
		w.stamp()
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write stamps the token, then writes b.
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

// Unwrap lets http.ResponseController reach the underlying writer
// (deadlines, hijacking...).
func (w *tokenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
