package lsn_test

import (
	"errors"
	"testing"

	"github.com/pgwait/pgwait/internal/lsn"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want lsn.LSN
		text string
	}{
		{"0/0", 0, "0/0"},
		{"0/3000060", 0x3000060, "0/3000060"},
		{"0/03000060", 0x3000060, "0/3000060"},
		{"16/B374D848", 0x16B374D848, "16/b374d848"},
		{"16/b374d848", 0x16B374D848, "16/b374d848"},
		{"FFFFFFFF/FFFFFFFF", ^lsn.LSN(0), "ffffffff/ffffffff"},
		{"00000001/00000000", 1 << 32, "1/0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := lsn.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %#x, want %#x", tt.in, uint64(got), uint64(tt.want))
			}
			if s := got.String(); s != tt.text {
				t.Fatalf("String() = %q, want %q", s, tt.text)
			}
			if b, err := lsn.ParseBytes([]byte(tt.in)); err != nil || b != got {
				t.Fatalf("ParseBytes(%q) = %#x, %v; want %#x", tt.in, uint64(b), err, uint64(got))
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", "/", "0/", "/0", "0", "0//0", "0/0/0", " 0/0", "0/0 ", "0/-1", "+0/1",
		"123456789/0", "0/123456789", "g/0", "0/x", "0x1/0", "0/1'; DROP TABLE t; --",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := lsn.Parse(in)
			if !errors.Is(err, lsn.ErrSyntax) {
				t.Fatalf("Parse(%q) error = %v, want ErrSyntax", in, err)
			}
			if _, berr := lsn.ParseBytes([]byte(in)); berr == nil || berr.Error() != err.Error() {
				t.Fatalf("ParseBytes(%q) error = %v, want Parse's: %v", in, berr, err)
			}
		})
	}
}

// TestParseBytesAllocs: ParseBytes reads a column value with no copy.
func TestParseBytesAllocs(t *testing.T) {
	b := []byte("16/B374D848")
	if n := testing.AllocsPerRun(100, func() { lsn.ParseBytes(b) }); n != 0 {
		t.Fatalf("ParseBytes allocates %v times", n)
	}
}

func TestText(t *testing.T) {
	var l lsn.LSN
	if err := l.UnmarshalText([]byte("1/2")); err != nil {
		t.Fatal(err)
	}
	b, _ := l.MarshalText()
	if string(b) != "1/2" {
		t.Fatalf("MarshalText = %q", b)
	}
	if err := l.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("UnmarshalText accepted garbage")
	}
	if l != 1<<32|2 {
		t.Fatalf("a failed UnmarshalText changed the value to %v", l)
	}
}

func TestMax(t *testing.T) {
	if lsn.Max(1, 2) != 2 || lsn.Max(2, 1) != 2 || lsn.Max(0, 0) != 0 {
		t.Fatal("Max is wrong")
	}
}

func TestEndOfRecord(t *testing.T) {
	const block, seg = 8192, 16 << 20
	tests := []struct {
		name string
		in   lsn.LSN
		want lsn.LSN
	}{
		{"mid page", 0x3000060, 0x3000060},
		{"after short page header", 0x3002018, 0x3002000},
		{"after long page header", 0x3000028, 0x3000000},
		{"24 bytes into a segment's first page is not a boundary", 0x3000018, 0x3000018},
		{"40 bytes into another page is not a boundary", 0x3002028, 0x3002028},
		{"exactly on a boundary", 0x3002000, 0x3002000},
		{"zero", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lsn.EndOfRecord(tt.in, block, seg); got != tt.want {
				t.Fatalf("EndOfRecord(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if got := lsn.EndOfRecord(0x3002018, 0, 0); got != 0x3002018 {
		t.Fatalf("unknown sizes must leave the LSN alone, got %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0/0", "0/3000060", "16/B374D848", "0/03000060", "x", "1/", "/1", "ffffffff/ffffffff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := lsn.Parse(s)
		if b, berr := lsn.ParseBytes([]byte(s)); b != l || (berr == nil) != (err == nil) || err != nil && berr.Error() != err.Error() {
			t.Fatalf("ParseBytes(%q) = %v, %v; Parse: %v, %v", s, b, berr, l, err)
		}
		if err != nil {
			if !errors.Is(err, lsn.ErrSyntax) {
				t.Fatalf("error not ErrSyntax: %v", err)
			}
			return
		}
		// Whatever parses must format to a literal that parses to the same
		// value and holds only hex digits and one slash.
		text := l.String()
		for _, c := range text {
			if !(c == '/' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("String() = %q has %q", text, c)
			}
		}
		back, err := lsn.Parse(text)
		if err != nil || back != l {
			t.Fatalf("round trip %q -> %v -> %q -> %v, %v", s, l, text, back, err)
		}
	})
}
