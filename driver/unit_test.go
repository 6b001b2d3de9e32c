package driver

// Server-free tests of the driver's pure helpers.

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
