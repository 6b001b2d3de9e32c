// Package lsn parses, formats and compares PostgreSQL write-ahead log
// positions (pg_lsn values such as 0/3000060).
package lsn

import (
	"errors"
	"fmt"
	"strconv"
)

// LSN is a position in PostgreSQL's write-ahead log: a byte offset in one
// 64-bit WAL stream. The zero LSN means "no position" (InvalidXLogRecPtr).
type LSN uint64

// Zero is the invalid LSN, below every real position.
const Zero LSN = 0

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("invalid LSN")

// Parse reads an LSN in PostgreSQL's text form: two hexadecimal numbers of
// at most 8 digits each, separated by a slash ("16/B374D848"; PostgreSQL 19
// pads the second one to 8 digits, "0/03000060"). Surrounding blanks are not
// accepted: the text goes into SQL literals.
func Parse(s string) (LSN, error) {
	l, err := parse(s)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	return l, nil
}

// ParseBytes is Parse of a text held in bytes, such as a column value read
// from the server, without copying it to a string first.
func ParseBytes(b []byte) (LSN, error) {
	l, err := parse(string(b)) // parse keeps no reference: no copy
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrSyntax, b, err)
	}
	return l, nil
}

var errNoSlash = errors.New("want two hexadecimal numbers separated by a slash, such as 0/3000060")

// parse is Parse without the text in its errors, so that nothing of s
// outlives the call.
func parse(s string) (LSN, error) {
	slash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			slash = i
			break
		}
	}
	if slash <= 0 || slash == len(s)-1 {
		return 0, errNoSlash
	}
	hi, err := parseHalf(s[:slash])
	if err != nil {
		return 0, err
	}
	lo, err := parseHalf(s[slash+1:])
	if err != nil {
		return 0, err
	}
	return LSN(hi<<32 | lo), nil
}

var errHalfTooLong = errors.New("each half has at most 8 hexadecimal digits")

func parseHalf(h string) (uint64, error) {
	if len(h) > 8 {
		return 0, errHalfTooLong
	}
	var v uint64
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, fmt.Errorf("%q is not a hexadecimal digit", h[i])
		}
		v = v<<4 | uint64(c)
	}
	return v, nil
}

// String formats l as PostgreSQL does before version 19 ("0/3000060"), which
// every version accepts as input.
func (l LSN) String() string {
	return string(l.AppendText(make([]byte, 0, 17)))
}

// AppendText appends the text form of l to b.
func (l LSN) AppendText(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(l)>>32, 16)
	b = append(b, '/')
	return strconv.AppendUint(b, uint64(l)&0xFFFFFFFF, 16)
}

// MarshalText implements encoding.TextMarshaler.
func (l LSN) MarshalText() ([]byte, error) { return l.AppendText(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseBytes(b)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// IsZero reports whether l is the invalid LSN.
func (l LSN) IsZero() bool { return l == 0 }

// Max returns the later of a and b.
func Max(a, b LSN) LSN {
	if a > b {
		return a
	}
	return b
}

// Sizes of WAL page headers (XLogPageHeaderData, XLogLongPageHeaderData).
const (
	shortPageHeader = 24
	longPageHeader  = 40
)

// EndOfRecord maps a WAL insert position, as pg_current_wal_insert_lsn()
// returns it, to the end of the last record inserted before it: the position a
// standby reports once it has replayed that record.
//
// The two differ only when the last record ended exactly at a page boundary:
// the insert position then already points past the next page's header (24
// bytes, or 40 on the first page of a segment), and no record will ever end
// there, so a standby asked to wait for it would wait until some later WAL
// happened to be written. blockSize and segmentSize are the server's
// wal_block_size and wal_segment_size in bytes.
func EndOfRecord(insert LSN, blockSize, segmentSize uint64) LSN {
	if blockSize == 0 || segmentSize == 0 {
		return insert
	}
	off := uint64(insert) % blockSize
	switch {
	case off == longPageHeader && uint64(insert)%segmentSize == longPageHeader:
		return insert - longPageHeader
	case off == shortPageHeader && uint64(insert)%segmentSize != shortPageHeader:
		return insert - shortPageHeader
	}
	return insert
}
