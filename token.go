package pgwait

import (
	"sync/atomic"

	"github.com/pgwait/pgwait/internal/lsn"
)

// LSN is a position in the primary's write-ahead log, the unit pgwait tracks
// writes in. Its text form is PostgreSQL's pg_lsn ("16/B374D848"). The zero
// LSN means "nothing to wait for".
type LSN uint64

// ParseLSN reads an LSN in PostgreSQL's text form.
func ParseLSN(s string) (LSN, error) {
	l, err := lsn.Parse(s)
	return LSN(l), err
}

// String returns the LSN in PostgreSQL's text form.
func (l LSN) String() string { return lsn.LSN(l).String() }

// MarshalText implements encoding.TextMarshaler.
func (l LSN) MarshalText() ([]byte, error) { return lsn.LSN(l).MarshalText() }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error { return (*lsn.LSN)(l).UnmarshalText(b) }

// A Token is a consistency point that travels with a context: reads made with
// the context wait until the replica has replayed the token's LSN, and writes
// made with it advance the token to their commit. Carry its text form between
// requests or processes (an HTTP header, a cookie, a queue message) to give a
// user read-your-writes across a whole session.
//
// A Token only moves forward. It is safe for concurrent use; the zero value is
// an empty token that waits for nothing.
type Token struct {
	lsn atomic.Uint64
}

// NewToken returns a token at l.
func NewToken(l LSN) *Token {
	t := new(Token)
	t.lsn.Store(uint64(l))
	return t
}

// ParseToken reads a token's text form, as String writes it. The empty string
// is an empty token, so a first request without a token needs no special case.
func ParseToken(s string) (*Token, error) {
	if s == "" {
		return new(Token), nil
	}
	l, err := ParseLSN(s)
	if err != nil {
		return nil, err
	}
	return NewToken(l), nil
}

// LSN returns the token's position; zero for an empty token.
func (t *Token) LSN() LSN {
	if t == nil {
		return 0
	}
	return LSN(t.lsn.Load())
}

// Advance moves the token to l if l is later, and reports whether it moved.
func (t *Token) Advance(l LSN) bool {
	for {
		cur := t.lsn.Load()
		if uint64(l) <= cur {
			return false
		}
		if t.lsn.CompareAndSwap(cur, uint64(l)) {
			return true
		}
	}
}

// String returns the token's text form: its LSN, or "" for an empty token.
func (t *Token) String() string {
	l := t.LSN()
	if l == 0 {
		return ""
	}
	return l.String()
}
