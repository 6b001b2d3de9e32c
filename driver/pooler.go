package driver

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait"
)

// A pooler in transaction pooling (PgBouncer before 1.21, or without
// max_prepared_statements) hands a client connection another server
// connection between transactions, and named prepared statements stay
// behind on the server they were made on. pgwait names the statements it
// prepares (cache_statement, db.Prepare, its capture of a write's position)
// pgwait_..., closes each name before preparing it, and forgets none it has
// not closed: a server that says one of them does not exist (26000), or
// already exists (42P05), is not the one pgwait prepared it on. The
// statement failed before it ran; the error it returns says so, and what to
// configure.

// poolerError explains err when it is such a server error, wrapping it (and
// pgwait.ErrPoolerPreparedStatements); it returns any other error as it is.
func poolerError(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || errors.Is(err, pgwait.ErrPoolerPreparedStatements) {
		return err
	}
	// The name is in the message whatever the server's language.
	if (pgErr.Code == "26000" || pgErr.Code == "42P05") && strings.Contains(pgErr.Message, "pgwait_") {
		return &lostStatementError{err: err}
	}
	return err
}

// lostStatementError is a prepared statement lost to a pooler.
type lostStatementError struct{ err error }

// Error says what happened and what to configure, then what the server said.
func (e *lostStatementError) Error() string {
	return "pgwait: the server connection lost a statement pgwait prepared on it (a connection pooler in transaction pooling switched server connections; " +
		"the statement did not run): set default_query_exec_mode=exec, simple_protocol or cache_describe in the connection string and do not use db.Prepare, " +
		"or use PgBouncer 1.21 or later with max_prepared_statements; the server said: " + e.err.Error()
}

// Unwrap gives errors.Is pgwait.ErrPoolerPreparedStatements and errors.As
// the server's *pgconn.PgError.
func (e *lostStatementError) Unwrap() []error {
	return []error{pgwait.ErrPoolerPreparedStatements, e.err}
}
