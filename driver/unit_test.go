package driver

// Server-free tests of the driver's pure helpers.

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/internal/lsn"
)

func TestWaitSQL(t *testing.T) {
	assert.Equal(t, "WAIT FOR LSN '0/3000060' WITH (TIMEOUT 500, NO_THROW)", waitSQL(lsn.LSN(0x3000060), 500))
	assert.Equal(t, "WAIT FOR LSN 'ffffffff/ffffffff' WITH (TIMEOUT 1, NO_THROW)", waitSQL(lsn.LSN(1<<64-1), 1))
}

func TestSessionKey(t *testing.T) {
	tests := map[string]string{
		"SET search_path TO app":            "search_path",
		"SET SESSION search_path=app":       "search_path",
		"set Application_Name = 'x'":        "application_name",
		"RESET ALL":                         "all",
		"RESET statement_timeout;":          "statement_timeout",
		"SET ROLE app":                      "role",
		"SET SESSION AUTHORIZATION DEFAULT": "authorization",
		"SET":                               "SET",
	}
	for query, want := range tests {
		assert.Equal(t, want, sessionKey(query), query)
	}
}

func TestIsDiscardAll(t *testing.T) {
	for query, want := range map[string]bool{
		"DISCARD ALL": true, "discard all;": true, "  Discard   All ": true,
		"DISCARD TEMP": false, "DISCARD": false, "SELECT 'DISCARD ALL'": false,
	} {
		assert.Equal(t, want, isDiscardAll(query), query)
	}
}

func TestServerMajor(t *testing.T) {
	for v, want := range map[string]int{"19rc1": 19, "15.18 (Debian 15.18-0+deb12u1)": 15, "9.6.24": 9, "": 0, "devel": 0} {
		assert.Equal(t, want, serverMajor(v), v)
	}
}

func TestBeginSQL(t *testing.T) {
	tests := []struct {
		opts sqldriver.TxOptions
		want string
	}{
		{sqldriver.TxOptions{}, "BEGIN"},
		{sqldriver.TxOptions{ReadOnly: true}, "BEGIN READ ONLY"},
		{sqldriver.TxOptions{Isolation: sqldriver.IsolationLevel(sql.LevelSerializable)}, "BEGIN ISOLATION LEVEL SERIALIZABLE"},
		{sqldriver.TxOptions{Isolation: sqldriver.IsolationLevel(sql.LevelSnapshot), ReadOnly: true}, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
	}
	for _, tt := range tests {
		got, err := beginSQL(tt.opts)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	_, err := beginSQL(sqldriver.TxOptions{Isolation: sqldriver.IsolationLevel(sql.LevelLinearizable)})
	assert.ErrorContains(t, err, "not supported")
}

func TestArguments(t *testing.T) {
	bg := context.Background()
	ctx, q, args, err := arguments(bg, "SELECT @a", []sqldriver.NamedValue{{Ordinal: 1, Value: pgx.NamedArgs{"a": 1}}})
	require.NoError(t, err)
	assert.Equal(t, "SELECT $1", q)
	assert.Equal(t, []any{1}, args)
	assert.Nil(t, ctx.Value(modeKey{}), "no mode unless asked for")

	// A QueryExecMode, before or after a rewriter, picks the statement's
	// mode, as with pgx.
	ctx, q, args, err = arguments(bg, "SELECT @a", []sqldriver.NamedValue{
		{Ordinal: 1, Value: pgx.QueryExecModeSimpleProtocol}, {Ordinal: 2, Value: pgx.NamedArgs{"a": 1}}})
	require.NoError(t, err)
	assert.Equal(t, "SELECT $1", q)
	assert.Equal(t, []any{1}, args)
	s := &side{mode: pgx.QueryExecModeCacheStatement}
	assert.Equal(t, pgx.QueryExecModeSimpleProtocol, s.modeFor(ctx))
	assert.Equal(t, pgx.QueryExecModeCacheStatement, s.modeFor(bg))
	ctx, _, args, err = arguments(bg, "SELECT $1", []sqldriver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecModeExec}, {Ordinal: 2, Value: 7}})
	require.NoError(t, err)
	assert.Equal(t, []any{7}, args)
	assert.Equal(t, pgx.QueryExecModeExec, s.modeFor(ctx))

	_, _, _, err = arguments(bg, "SELECT 1", []sqldriver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecMode(42)}})
	assert.ErrorContains(t, err, "unknown QueryExecMode")
	_, _, _, err = arguments(bg, "SELECT 1", []sqldriver.NamedValue{{Ordinal: 1, Value: pgx.QueryResultFormats{1}}})
	assert.ErrorContains(t, err, "not supported")
}

func TestShiftPosition(t *testing.T) {
	err := &pgconn.PgError{Code: "42601", Position: 30}
	assert.Equal(t, int32(10), shiftPosition(err, 20).(*pgconn.PgError).Position)
	err = &pgconn.PgError{Code: "42601", Position: 5}
	assert.Equal(t, int32(5), shiftPosition(err, 20).(*pgconn.PgError).Position, "a position in pgwait's own statement stays")
}

// fakeResult is a resultReader over canned rows that ends with err.
type fakeResult struct {
	rows   [][][]byte
	i      int
	err    error
	closed int
}

func (f *fakeResult) NextRow() bool {
	if f.i >= len(f.rows) {
		return false
	}
	f.i++
	return true
}
func (f *fakeResult) Values() [][]byte { return f.rows[f.i-1] }
func (f *fakeResult) FieldDescriptions() []pgconn.FieldDescription {
	return []pgconn.FieldDescription{{Name: "v", DataTypeOID: 25, Format: pgx.TextFormatCode}}
}
func (f *fakeResult) Close() (pgconn.CommandTag, error) {
	f.closed++
	return pgconn.CommandTag{}, f.err
}

// TestRowsReadAhead: reading past the first row ends a one-row result
// before any row is handed out and reports how it ended; the rows still
// hand out the same rows and error as without reading ahead.
func TestRowsReadAhead(t *testing.T) {
	conflict := &pgconn.PgError{Code: "40001", Message: "canceling statement due to conflict with recovery"}
	other := &pgconn.PgError{Code: "22012", Message: "division by zero"}
	row := func(s string) [][]byte { return [][]byte{[]byte(s)} }
	tests := []struct {
		name      string
		rows      [][][]byte
		err       error
		ahead     error // readAhead's answer
		ended     bool  // the result was read to its end by readAhead
		want      []string
		wantLater error
	}{
		{"no row", nil, nil, nil, true, nil, nil},
		{"one row", [][][]byte{row("a")}, nil, nil, true, []string{"a"}, nil},
		{"one row then a conflict", [][][]byte{row("a")}, conflict, conflict, true, []string{"a"}, conflict},
		{"one row then another error", [][][]byte{row("a")}, other, other, true, []string{"a"}, other},
		{"three rows", [][][]byte{row("a"), row("b"), row("c")}, nil, nil, false, []string{"a", "b", "c"}, nil},
		{"two rows then a conflict", [][][]byte{row("a"), row("b")}, conflict, nil, false, []string{"a", "b"}, conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeResult{rows: tt.rows, err: tt.err}
			finished := 0
			r := newRows(f, pgtype.NewMap(), nil, func(_ pgconn.CommandTag, err error) error { finished++; return err })
			require.NoError(t, r.preload())
			assert.Equal(t, tt.ahead, r.readAhead())
			assert.Equal(t, tt.ended, finished == 1, "finished before any row was handed out")
			dest := make([]sqldriver.Value, 1)
			var got []string
			var err error
			for {
				if err = r.Next(dest); err != nil {
					break
				}
				got = append(got, dest[0].(string))
			}
			assert.Equal(t, tt.want, got)
			if tt.wantLater != nil {
				assert.Equal(t, tt.wantLater, err)
			} else {
				assert.Equal(t, io.EOF, err)
			}
			assert.Equal(t, tt.wantLater, r.Close())
			assert.Equal(t, 1, finished, "finish runs once")
			assert.Equal(t, 1, f.closed)
		})
	}
}

// TestUnsent: a capture batch whose write failed is retried elsewhere by
// database/sql, as pgconn's own unsent statements are; a failed read is not
// (the batch may have run).
func TestUnsent(t *testing.T) {
	write := &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}
	read := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	if err := unsent(write); !pgconn.SafeToRetry(err) || !errors.Is(err, syscall.EPIPE) || err.Error() != write.Error() {
		t.Errorf("unsent(write error) = %v: want it safe to retry, the same error", err)
	}
	if err := unsent(read); pgconn.SafeToRetry(err) || err != error(read) {
		t.Errorf("unsent(read error) = %v: want it unchanged", err)
	}
	if err := retryable(unsent(fmt.Errorf("sending: %w", write))); err != sqldriver.ErrBadConn {
		t.Errorf("retryable(unsent(write error)) = %v, want driver.ErrBadConn", err)
	}
}
