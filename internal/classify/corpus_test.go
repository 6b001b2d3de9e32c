package classify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusFile holds real-world statements with their expected classification;
// its first record documents the format.
var corpusFile = filepath.Join("..", "..", "testdata", "classify", "statements.txt")

// corpusRecord is one statement of the corpus and what Classify must say.
type corpusRecord struct {
	line   int // where the record starts in the file, for messages
	sql    string
	kind   Kind
	hint   Hint
	query  string // "true", "false" or "" (not checked)
	reason string // "" when not checked
}

// readCorpus parses the corpus file.
func readCorpus(tb testing.TB) []corpusRecord {
	tb.Helper()
	data, err := os.ReadFile(corpusFile)
	if err != nil {
		tb.Fatal(err)
	}
	var records []corpusRecord
	line := 1
	for i, chunk := range strings.Split(string(data), "\n---\n") {
		rec, ok, err := parseRecord(line, strings.Split(strings.TrimSuffix(chunk, "\n"), "\n"))
		switch {
		case err != nil:
			tb.Fatal(err)
		case ok:
			records = append(records, rec)
		case i > 0: // only the first record, the documentation, has no header
			tb.Fatalf("%s:%d: record without an expect header", corpusFile, line)
		}
		line += strings.Count(chunk, "\n") + 2 // the chunk and the separator
	}
	return records
}

// parseRecord reads the header lines of a record and keeps the rest as SQL.
// ok is false for a record without an expect header.
func parseRecord(line int, lines []string) (rec corpusRecord, ok bool, err error) {
	rec.line = line
	for len(lines) > 0 {
		key, value, isHeader := headerLine(lines[0])
		if !isHeader {
			break
		}
		switch key {
		case "expect":
			ok = true
			if rec.kind, err = parseKind(value); err != nil {
				return rec, ok, fmt.Errorf("%s:%d: %v", corpusFile, line, err)
			}
		case "hint":
			switch value {
			case "primary":
				rec.hint = Primary
			case "replica":
				rec.hint = Replica
			case "none":
			default:
				return rec, ok, fmt.Errorf("%s:%d: bad hint %q", corpusFile, line, value)
			}
		case "query":
			rec.query = value
		case "reason":
			rec.reason = value
		}
		lines = lines[1:]
	}
	rec.sql = strings.Join(lines, "\n")
	return rec, ok, nil
}

// headerLine splits a line "-- key: value" whose key is one the corpus
// format defines.
func headerLine(line string) (key, value string, ok bool) {
	rest, ok := strings.CutPrefix(line, "-- ")
	if !ok {
		return "", "", false
	}
	key, value, ok = strings.Cut(rest, ": ")
	switch key {
	case "expect", "hint", "query", "reason":
		return key, value, ok
	}
	return "", "", false
}

func parseKind(s string) (Kind, error) {
	for k := Write; k <= Transaction; k++ {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("bad kind %q", s)
}

func TestCorpus(t *testing.T) {
	records := readCorpus(t)
	if len(records) < 120 {
		t.Fatalf("corpus has %d statements, want at least 120", len(records))
	}
	for _, rec := range records {
		got := Classify(rec.sql)
		where := fmt.Sprintf("%s:%d", corpusFile, rec.line)
		if got.Kind != rec.kind {
			t.Errorf("%s: Kind = %v (%s), want %v\n%s", where, got.Kind, got.Reason, rec.kind, rec.sql)
		}
		if got.Hint != rec.hint {
			t.Errorf("%s: Hint = %d, want %d\n%s", where, got.Hint, rec.hint, rec.sql)
		}
		if rec.query != "" && fmt.Sprint(got.Query) != rec.query {
			t.Errorf("%s: Query = %v, want %s\n%s", where, got.Query, rec.query, rec.sql)
		}
		if rec.reason != "" && got.Reason != rec.reason {
			t.Errorf("%s: Reason = %q, want %q\n%s", where, got.Reason, rec.reason, rec.sql)
		}
	}
	t.Logf("%d corpus statements", len(records))
}

// TestCorpusAllocations checks that Classify allocates nothing, on every
// corpus statement.
func TestCorpusAllocations(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	for _, rec := range readCorpus(t) {
		allocs := testing.AllocsPerRun(20, func() { Classify(rec.sql) })
		if allocs != 0 {
			t.Errorf("%s:%d: %v allocations per call", corpusFile, rec.line, allocs)
		}
	}
}
