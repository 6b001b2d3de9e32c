package difftest

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestFormat(t *testing.T) {
	type inner struct{ B []byte }
	type outer struct {
		A      *int
		N      *int
		T      time.Time
		S      []string
		E      []string
		M      map[string]any
		I      inner
		hidden int
	}
	one := 1
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600))
	got := Format(outer{A: &one, T: at, E: []string{}, M: map[string]any{"b": 2, "a": nil}, I: inner{B: []byte("x\x00")}, hidden: 7})
	require.Equal(t, `difftest.outer{A:&int(1), N:nil, T:2026-01-02T03:04:05.000006+01:00 X, S:[]string(nil), E:[], `+
		`M:map[string("a"): nil, string("b"): int(2)], I:difftest.inner{B:"x\x00"}}`, got)
	require.Equal(t, "nil", Format(nil))
	require.Equal(t, `[]byte(nil)`, Format([]byte(nil)))
	require.Equal(t, "sql.NullString{String:string(\"\"), Valid:bool(false)}", Format(sql.NullString{}))
}

func TestErrText(t *testing.T) {
	require.Equal(t, "<nil>", ErrText(nil))
	require.Equal(t, "boom", ErrText(errors.New("boom")))
	pgErr := &pgconn.PgError{Code: "23505", Message: "duplicate key", Detail: "Key (a)=(1) already exists."}
	require.Equal(t, "SQLSTATE 23505: duplicate key (Key (a)=(1) already exists.)", ErrText(fmt.Errorf("wrapped: %w", pgErr)))
}

func TestRecordNormalizesStatementNames(t *testing.T) {
	var tr Transcript
	tr.Record("s", nil, errors.New(`prepared statement "stmtcache_0123456789abcdef0123" does not exist`))
	require.Equal(t, "s: nil | prepared statement \"STMT\" does not exist\n", tr.String())
	require.Panics(t, func() { tr.Record("s", nil, nil) }, "a step name twice")
}

// recorder is a testing.TB that keeps what compare reports.
type recorder struct {
	testing.TB
	errs, logs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func TestCompare(t *testing.T) {
	transcript := func(outs ...string) *Transcript {
		var tr Transcript
		for i, o := range outs {
			tr.Record(fmt.Sprint("step ", i), o, nil)
		}
		return &tr
	}
	deliberate := map[string]string{"run/step 1": "on purpose", "other/step 0": "another run's"}
	check := func(want, got *Transcript) *recorder {
		r := &recorder{TB: t}
		compare(r, "run", want, got, deliberate)
		return r
	}

	r := check(transcript("a", "b", "c"), transcript("a", "B", "c"))
	require.Empty(t, r.errs, "a listed difference")
	require.Len(t, r.logs, 1)

	r = check(transcript("a", "b", "c"), transcript("a", "B", "C"))
	require.Len(t, r.errs, 1, "an unlisted difference")
	require.Contains(t, r.errs[0], `step "step 2" differs`)

	r = check(transcript("a", "b", "c"), transcript("a", "b", "c"))
	require.Len(t, r.errs, 1, "a listed difference that is gone")
	require.True(t, strings.HasPrefix(r.errs[0], `Deliberate lists "run/step 1"`), r.errs[0])

	r = check(transcript("a", "b"), transcript("a", "B", "c"))
	require.Len(t, r.errs, 1, "runs of different lengths")
}
