package pgwaithttp

import (
	"net/http"

	"github.com/pgwait/pgwait"
)

// Transport is an http.RoundTripper for clients of a service that carries
// tokens: it sends the token of the request's context (pgwait.TokenFrom) in
// Header, and advances that token to the one the response carries back, so
// that a caller that passes its own token along reads, through the service,
// what it wrote through it. A request whose context has no token, or whose
// header is already set, is sent as it is. The token only moves forward
// (pgwait.Token.AdvanceOn), so that concurrent requests sharing it never move
// it back: a token the service reset as forged stays as it was here.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Header names the header; "" means DefaultHeader.
	Header string
	// MaxLen bounds the response token accepted, in bytes; 0 means
	// DefaultMaxLen. A longer or invalid one leaves the token as it was.
	MaxLen int
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	header := t.Header
	if header == "" {
		header = DefaultHeader
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tok := pgwait.TokenFrom(req.Context())
	if tok == nil || req.Header.Get(header) != "" {
		return base.RoundTrip(req)
	}
	if s := tok.String(); s != "" {
		req = req.Clone(req.Context()) // a RoundTripper must not change its request
		req.Header.Set(header, s)
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	maxLen := t.MaxLen
	if maxLen == 0 {
		maxLen = DefaultMaxLen
	}
	if raw := resp.Header.Get(header); raw != "" && len(raw) <= maxLen {
		if back, err := pgwait.ParseToken(raw); err == nil {
			l, tli := back.Position()
			tok.AdvanceOn(tli, l)
		}
	}
	return resp, nil
}
