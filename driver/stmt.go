package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
)

// Stmt is a prepared statement. It is prepared on a server the first time it
// runs there, so the same Stmt may run on the primary and on a replica.
type Stmt struct {
	conn  *Conn
	query string
}

// Close releases nothing: the server statements stay in the connection's
// statement cache.
func (s *Stmt) Close() error { return nil }

// NumInput returns -1: the server checks the argument count.
func (s *Stmt) NumInput() int { return -1 }

// Exec is the deprecated form of ExecContext.
func (s *Stmt) Exec([]sqldriver.Value) (sqldriver.Result, error) {
	return nil, errors.New("pgwait: Stmt.Exec is deprecated; database/sql calls ExecContext")
}

// Query is the deprecated form of QueryContext.
func (s *Stmt) Query([]sqldriver.Value) (sqldriver.Rows, error) {
	return nil, errors.New("pgwait: Stmt.Query is deprecated; database/sql calls QueryContext")
}

// ExecContext runs the statement as Conn.ExecContext would.
func (s *Stmt) ExecContext(ctx context.Context, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	return s.conn.ExecContext(ctx, s.query, args)
}

// QueryContext runs the statement as Conn.QueryContext would.
func (s *Stmt) QueryContext(ctx context.Context, args []sqldriver.NamedValue) (sqldriver.Rows, error) {
	return s.conn.QueryContext(ctx, s.query, args)
}
