package pgwait

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

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
// A token also remembers the primary's timeline its LSN belongs to, when
// known, so that after a failover a token from the old timeline waits only
// for what the new primary kept.
//
// A Token only moves forward. It is safe for concurrent use; the zero value is
// an empty token that waits for nothing.
type Token struct {
	mu       sync.Mutex
	lsn      LSN
	timeline uint32
}

// NewToken returns a token at l, on an unknown timeline.
func NewToken(l LSN) *Token {
	return &Token{lsn: l}
}

// ParseToken reads a token's text form, as String writes it: an LSN
// ("16/B374D848"), optionally followed by "@" and the timeline in decimal
// ("16/B374D848@2"). The empty string is an empty token, so a first request
// without a token needs no special case.
func ParseToken(s string) (*Token, error) {
	if s == "" {
		return new(Token), nil
	}
	text, tli := s, uint64(0)
	if at := strings.IndexByte(s, '@'); at >= 0 {
		var err error
		text = s[:at]
		tli, err = strconv.ParseUint(s[at+1:], 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("pgwait: token %s: %w: the timeline after @ must be a decimal number from 1 to 4294967295; pass the text Token.String returned, or \"\" for no token", quoteShort(s), lsn.ErrSyntax)
		}
	}
	l, err := lsn.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("pgwait: token %s: %w: want an LSN such as 16/B374D848, optionally followed by @ and its timeline; pass the text Token.String returned, or \"\" for no token", quoteShort(s), lsn.ErrSyntax)
	}
	return &Token{lsn: LSN(l), timeline: uint32(tli)}, nil
}

// quoteShort quotes s for an error message, cut to its first 40 bytes: a
// token comes from outside (a header, a cookie) and may be long.
func quoteShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "..."
	}
	return strconv.Quote(s)
}

// LSN returns the token's position; zero for an empty token.
func (t *Token) LSN() LSN {
	l, _ := t.Position()
	return l
}

// Position returns the token's LSN and its timeline (0 when unknown).
func (t *Token) Position() (LSN, uint32) {
	if t == nil {
		return 0, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lsn, t.timeline
}

// Advance moves the token to l if l is later, and reports whether it moved.
// On a nil *Token it does nothing and returns false, as String and Position
// treat a nil token as empty.
func (t *Token) Advance(l LSN) bool {
	return t.AdvanceOn(0, l)
}

// AdvanceOn moves the token to l on timeline tli (0: unknown), as pgwait
// does after each statement the primary ran with the token: on the same or
// an unknown timeline the later LSN wins; a position on another known
// timeline replaces the token's, since the primary that reported it follows
// that timeline now (whether the token's was earlier, from before a
// failover, or later, from a cluster since rebuilt). It reports whether the
// token changed. On a nil *Token it does nothing and returns false.
func (t *Token) AdvanceOn(tli uint32, l LSN) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tli != 0 && t.timeline != 0 && tli != t.timeline {
		t.lsn, t.timeline = l, tli
		return true
	}
	moved := tli != 0 && t.timeline == 0
	if tli != 0 {
		t.timeline = tli
	}
	if l > t.lsn {
		t.lsn = l
		moved = true
	}
	return moved
}

// Set replaces the token's position, even with an earlier one. pgwait uses
// it to reset a token that is ahead of everything the primary has written,
// or names a timeline the primary does not have: such a token was not issued
// by the cluster's current history (it was forged, or comes from a cluster
// since restored or rebuilt), and its reads would otherwise wait for a
// position that may never come. On a nil *Token it does nothing.
func (t *Token) Set(l LSN, tli uint32) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lsn, t.timeline = l, tli
}

// String returns the token's text form: "" for an empty token, else its LSN
// followed by "@timeline" when the timeline is known.
func (t *Token) String() string {
	l, tli := t.Position()
	if l == 0 {
		return ""
	}
	if tli == 0 {
		return l.String()
	}
	return l.String() + "@" + strconv.FormatUint(uint64(tli), 10)
}
