package driver

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stmt is a prepared statement. Like pgx stdlib's, it is prepared when
// database/sql prepares it, on the server that would run a statement of the
// connection that is not a read (the primary, or the server of the open
// transaction), so that Prepare reports what pgx stdlib reports. It is also
// prepared on a replica the first time it runs there, so the same Stmt may
// run on the primary and on a replica.
type Stmt struct {
	conn     *Conn
	query    string
	numInput int
}

// prepareStmt prepares query on s and returns its Stmt, counting it so that
// the server statement is deallocated when the last Stmt of it is closed,
// as pgx stdlib does.
func (c *Conn) prepareStmt(ctx context.Context, s *side, query string) (*Stmt, error) {
	st, err := s.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmtRefs == nil {
		c.stmtRefs = map[string]int{}
	}
	c.stmtRefs[query]++
	return &Stmt{conn: c, query: query, numInput: len(st.sd.ParamOIDs)}, nil
}

// Close deallocates the statement on the connection's servers when no other
// Stmt of the same text remains, as pgx stdlib does.
func (s *Stmt) Close() error {
	c := s.conn
	if c.stmtRefs[s.query] > 1 {
		c.stmtRefs[s.query]--
		return nil
	}
	delete(c.stmtRefs, s.query)
	for _, rs := range c.sides {
		rs.invalidate(s.query) // deallocated with the replica's next preparation
	}
	if c.primary == nil || c.primary.broken() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.primary.deallocate(ctx, s.query)
}

// NumInput returns the number of parameters the server found, as pgx
// stdlib does: database/sql checks the argument count against it.
func (s *Stmt) NumInput() int { return s.numInput }

// Exec is the deprecated form of ExecContext.
func (s *Stmt) Exec([]sqldriver.Value) (sqldriver.Result, error) {
	return nil, errors.New("pgwait: Stmt.Exec is deprecated; database/sql calls ExecContext")
}

// Query is the deprecated form of QueryContext.
func (s *Stmt) Query([]sqldriver.Value) (sqldriver.Rows, error) {
	return nil, errors.New("pgwait: Stmt.Query is deprecated; database/sql calls QueryContext")
}

// ExecContext runs the statement as Conn.ExecContext would, as a prepared
// statement whatever the exec mode, as pgx stdlib does.
func (s *Stmt) ExecContext(ctx context.Context, args []sqldriver.NamedValue) (sqldriver.Result, error) {
	return s.conn.ExecContext(withExecMode(ctx, pgx.QueryExecModeCacheStatement), s.query, args)
}

// QueryContext runs the statement as Conn.QueryContext would, as a prepared
// statement whatever the exec mode, as pgx stdlib does.
func (s *Stmt) QueryContext(ctx context.Context, args []sqldriver.NamedValue) (sqldriver.Rows, error) {
	return s.conn.QueryContext(withExecMode(ctx, pgx.QueryExecModeCacheStatement), s.query, args)
}

// stmtSide is the server a Stmt is prepared on: the open transaction's, or
// the primary.
func (c *Conn) stmtSide(ctx context.Context) (*side, error) {
	if c.tx != nil {
		return c.tx.side, nil
	}
	return c.primarySide(ctx)
}
