package driver

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
	"github.com/pgwait/pgwait/internal/tracker"
)

// Conn is one database/sql connection: a server connection to the primary
// and, once reads need them, connections to replicas. database/sql uses a
// Conn from one goroutine at a time.
//
// Where its statements go is decided in route.go, reads are served in
// read.go, statements on the primary and their LSN capture in write.go,
// session state in session.go, transactions in tx.go.
type Conn struct {
	c       *Connector
	session *tracker.Session // this connection's positions, in the tracker
	primary *side
	replica *side // the replica side used last
	sides   map[*replica]*side
	tx      *Tx

	// ownsConnector is set for a connection opened by Driver.Open, whose
	// connector is its own: closing the connection closes it.
	ownsConnector bool
	// settings are the session-level SET statements run on this connection,
	// replayed on server connections opened later.
	settings []sessionSetting
	// pinned is set once the primary's session holds state no replica
	// session has (a temporary table, set_config, ...): from then on every
	// statement runs on the primary, until DISCARD ALL.
	pinned bool
	// stmtRefs counts the open Stmts of each prepared text (stmt.go).
	stmtRefs map[string]int
	// classified caches what the classifier said of recent statements:
	// applications send the same few texts over and over.
	classified map[string]classify.Result
	// execArgs is ExecContext's argument slice, kept between calls: a
	// statement without rows keeps no reference to its arguments once it
	// returns (a query's rows may: QueryContext allocates its own).
	execArgs []any
}

// classifyCacheSize bounds a connection's classification cache.
const classifyCacheSize = 512

// classify classifies a statement, from the cache when it can.
func (c *Conn) classify(query string) classify.Result {
	if r, ok := c.classified[query]; ok {
		return r
	}
	r := classify.Classify(query)
	if c.classified == nil || len(c.classified) >= classifyCacheSize {
		c.classified = make(map[string]classify.Result, 64)
	}
	c.classified[query] = r
	return r
}

// Primary returns the primary's *pgx.Conn, opening it if needed. Use it inside
// sql.Conn.Raw; do not keep it past the Raw call.
func (c *Conn) Primary(ctx context.Context) (*pgx.Conn, error) {
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	return s.pgx, nil
}

// Replica returns the *pgx.Conn of this connection's replica, opening it if
// needed. Use it inside sql.Conn.Raw; do not keep it past the Raw call.
func (c *Conn) Replica(ctx context.Context) (*pgx.Conn, error) {
	s, err := c.replicaSide(ctx, 0, 0, nil)
	if err != nil {
		return nil, err
	}
	return s.pgx, nil
}

func (c *Conn) primarySide(ctx context.Context) (*side, error) {
	if c.primary != nil {
		if c.primary.broken() {
			return nil, sqldriver.ErrBadConn
		}
		return c.primary, nil
	}
	dc, err := c.c.primary.Connect(ctx)
	if err != nil {
		return nil, err
	}
	s := newSide(dc.(*stdlib.Conn), nil)
	if err := c.replaySettings(ctx, s); err != nil {
		s.close()
		return nil, err
	}
	if c.c.hasReplicas() {
		// Which history the primary follows: positions are only comparable
		// within one, and a failover must be noticed.
		e, err := s.identify(ctx)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("pgwait: reading the primary's timeline (needed to notice failovers) failed: %w", err)
		}
		if c.c.track.ObservePrimary(e) {
			c.c.stats.failovers.Add(1)
		}
	}
	c.primary = s
	return s, nil
}

// replicaSide returns the connection to the replica that should serve a read
// that must see target (from a replica at most maxStale behind, when set),
// opening it if needed; exclude lists replicas the read already tried. A replica that refuses the connection is ejected,
// unless it only has no free connection slot (SQLSTATE 53300): then the
// read tries another, and the replica stays in rotation for the pooled
// connections that hold one.
func (c *Conn) replicaSide(ctx context.Context, target tracker.LSN, maxStale time.Duration, exclude []int) (*side, error) {
	var buf [4]int // on the stack for up to four replicas
	tried := append(buf[:0], exclude...)
	reps := c.c.replicaList()
	for range len(reps) {
		i := c.c.track.Pick(c.session, target, maxStale, tried...)
		if i < 0 || i >= len(reps) {
			return nil, pgwait.ErrNoReplica
		}
		tried = append(tried, i)
		rep := reps[i]
		s, err := c.sideFor(ctx, rep)
		if err == nil {
			c.replica = s
			return s, nil
		}
		var ce connectError // declared here: errors.As moves it to the heap
		if !errors.As(err, &ce) || ctx.Err() != nil {
			return nil, err
		}
		c.c.stats.replicaErrors.Add(1)
		rep.status.failed(ce.err)
		if !isOutOfSlots(ce.err) {
			c.eject(rep, tracker.Failed)
		}
	}
	return nil, pgwait.ErrNoReplica
}

// connectError is a failure to connect to a replica, as sideFor reports it.
type connectError struct{ err error }

func (e connectError) Error() string { return e.err.Error() }
func (e connectError) Unwrap() error { return e.err }

// sideFor returns this connection's server connection to rep, opening it
// (and replaying the session's settings on it) if needed. A failure to
// connect comes back as a connectError.
func (c *Conn) sideFor(ctx context.Context, rep *replica) (*side, error) {
	if s := c.sides[rep]; s != nil {
		if !s.broken() {
			return s, nil
		}
		c.dropSide(s)
	}
	dc, err := rep.connect(ctx)
	if err != nil {
		return nil, connectError{err}
	}
	s := newSide(dc.(*stdlib.Conn), rep)
	s.observer = c
	if err := c.replaySettings(ctx, s); err != nil {
		s.close()
		return nil, err
	}
	if c.sides == nil {
		c.sides = map[*replica]*side{}
	}
	c.sides[rep] = s
	return s, nil
}

// isOutOfSlots reports a server refusing a connection for want of a free
// slot (too_many_connections): it is alive, and its existing connections
// work.
func isOutOfSlots(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "53300"
}

// eject takes a replica out of rotation for everyone.
func (c *Conn) eject(rep *replica, why tracker.Reason) {
	if c.c.track.Eject(rep.index, why, time.Now()) {
		c.c.stats.ejections.Add(1)
	}
}

// promoted takes a replica found out of recovery out of rotation: it no
// longer follows the primary.
func (c *Conn) promoted(rep *replica) {
	c.c.stats.promotions.Add(1)
	c.eject(rep, tracker.Promoted)
}

// dropSide closes a replica connection that failed.
func (c *Conn) dropSide(s *side) {
	s.close()
	delete(c.sides, s.rep)
	if c.replica == s {
		c.replica = nil
	}
}

// dropReplicaSides closes every replica connection; reads open new ones.
func (c *Conn) dropReplicaSides() {
	for _, s := range c.sides {
		c.dropSide(s)
	}
}

// Close closes the connection's server connections, and its connector when
// the connection has one of its own (Driver.Open).
func (c *Conn) Close() error {
	var err error
	if c.primary != nil {
		err = c.primary.close()
	}
	for _, s := range c.sides {
		s.close()
	}
	if c.ownsConnector {
		c.c.Close()
	}
	return err
}

// Prepare prepares a statement, as pgx stdlib does; see Stmt.
func (c *Conn) Prepare(query string) (sqldriver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext prepares a statement on the primary, or on the server of
// the open transaction, and reports its errors now, as pgx stdlib does; see
// Stmt.
func (c *Conn) PrepareContext(ctx context.Context, query string) (_ sqldriver.Stmt, err error) {
	defer func() { err = poolerError(err) }()
	s, err := c.stmtSide(ctx)
	if err != nil {
		return nil, err
	}
	st, err := c.prepareStmt(ctx, s, query)
	if err != nil {
		return nil, retryable(err)
	}
	return st, nil
}

// Begin starts a read-write transaction on the primary.
func (c *Conn) Begin() (sqldriver.Tx, error) {
	return c.BeginTx(context.Background(), sqldriver.TxOptions{})
}

// Ping checks the primary.
func (c *Conn) Ping(ctx context.Context) error {
	s, err := c.primarySide(ctx)
	if err != nil {
		return err
	}
	return s.std.Ping(ctx)
}

// CheckNamedValue accepts every argument: pgx converts them.
func (c *Conn) CheckNamedValue(*sqldriver.NamedValue) error { return nil }

// ResetSession is called before database/sql reuses the connection. The
// primary connection, if open, is checked as pgx stdlib checks it; replica
// connections are never pinged with the next caller's context (a frozen
// replica would hold up a write): a broken one is dropped, and reads notice
// a sick one within the replica timeout.
func (c *Conn) ResetSession(ctx context.Context) error {
	if c.primary != nil {
		if c.primary.broken() {
			return sqldriver.ErrBadConn
		}
		if err := c.primary.std.ResetSession(ctx); err != nil {
			return err
		}
	}
	for _, s := range c.sides {
		if s.broken() || s.rep.removed.Load() {
			c.dropSide(s) // reads reopen one; nothing of the session is lost
		}
	}
	return nil
}

// IsValid reports whether database/sql may reuse the connection: not when
// its primary connection broke (its session, and what it pinned there, is
// gone).
func (c *Conn) IsValid() bool {
	return c.primary == nil || !c.primary.broken()
}

// ExecContext runs a statement that returns no rows.
func (c *Conn) ExecContext(ctx context.Context, query string, named []sqldriver.NamedValue) (_ sqldriver.Result, err error) {
	defer func() { err = poolerError(err) }()
	values := appendValues(c.execArgs[:0], named)
	c.execArgs = values[:0]
	defer clear(values) // keep none of the caller's values alive
	ctx, query, args, err := options(ctx, query, values)
	if err != nil {
		return nil, err
	}
	return c.exec(ctx, query, args)
}

func (c *Conn) exec(ctx context.Context, query string, args []any) (sqldriver.Result, error) {
	if c.tx != nil {
		return c.tx.exec(ctx, query, args)
	}
	cls := c.classify(query)
	fromStdin, toStdout := copyKind(query) // copy.go
	switch {
	case fromStdin:
		return nil, errCopyFromStdin
	case cls.Kind == classify.Session:
		return c.setSession(ctx, query, args)
	case isScript(cls, args) || toStdout && len(args) == 0:
		return c.execScript(ctx, cls, query)
	case c.toReplica(ctx, cls):
		r, err := c.read(ctx, query, args)
		if err != nil {
			return nil, err
		}
		return drain(r)
	}
	return c.execPrimary(ctx, cls, query, args)
}

// QueryContext runs a statement that returns rows.
func (c *Conn) QueryContext(ctx context.Context, query string, named []sqldriver.NamedValue) (_ sqldriver.Rows, err error) {
	defer func() { err = poolerError(err) }()
	ctx, query, args, err := arguments(ctx, query, named)
	if err != nil {
		return nil, err
	}
	if c.tx != nil {
		return c.tx.query(ctx, query, args)
	}
	cls := c.classify(query)
	if cls.Kind == classify.Session {
		if _, err := c.setSession(ctx, query, args); err != nil {
			return nil, err
		}
		return noRows{}, nil
	}
	if c.toReplica(ctx, cls) {
		return c.read(ctx, query, args)
	}
	return c.queryPrimary(ctx, cls, query, args)
}

// arguments turns database/sql arguments into pgx arguments, applying the
// pgx options that lead them, as pgx does: a QueryRewriter (such as
// pgx.NamedArgs) rewrites the query, and a QueryExecMode runs the
// statement in that mode (returned in ctx; modes.go).
func arguments(ctx context.Context, query string, named []sqldriver.NamedValue) (context.Context, string, []any, error) {
	return options(ctx, query, appendValues(make([]any, 0, len(named)), named))
}

// appendValues appends the values of named to dst.
func appendValues(dst []any, named []sqldriver.NamedValue) []any {
	for _, nv := range named {
		dst = append(dst, nv.Value)
	}
	return dst
}

// options applies the pgx options that lead args, as arguments says.
func options(ctx context.Context, query string, args []any) (context.Context, string, []any, error) {
	var rewriter pgx.QueryRewriter
options:
	for len(args) > 0 {
		switch opt := args[0].(type) {
		case pgx.QueryExecMode:
			if !validMode(opt) {
				return ctx, "", nil, fmt.Errorf("unknown QueryExecMode: %v", opt)
			}
			ctx = withExecMode(ctx, opt)
		case pgx.QueryRewriter:
			rewriter = opt
		case pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
			return ctx, "", nil, fmt.Errorf("pgwait: pgx option %T is not supported as a query argument; pgwait chooses result formats as pgx stdlib does", opt)
		default:
			break options
		}
		args = args[1:]
	}
	if rewriter != nil {
		// A copy: whatever the rewriter keeps must not change under it.
		q, a, err := rewriter.RewriteQuery(ctx, nil, query, slices.Clone(args))
		if err != nil {
			return ctx, "", nil, fmt.Errorf("rewrite query failed: %w", err)
		}
		return ctx, q, a, nil
	}
	return ctx, query, args, nil
}

func result(tag pgconn.CommandTag, err error) (sqldriver.Result, error) {
	if err != nil {
		return nil, retryable(err)
	}
	return sqldriver.RowsAffected(tag.RowsAffected()), nil
}

// wrapRows keeps a nil *rows from becoming a non-nil interface.
func wrapRows(r *rows, err error) (sqldriver.Rows, error) {
	if err != nil {
		return nil, retryable(err)
	}
	return r, nil
}

// retryable turns an error that happened before anything reached the server
// into driver.ErrBadConn, on which database/sql retries on another
// connection, as pgx stdlib does. Any other error stands: a statement that
// may have reached the server is never retried.
func retryable(err error) error {
	if pgconn.SafeToRetry(err) {
		return sqldriver.ErrBadConn
	}
	return err
}

// drain reads a read's rows for Exec and reports how many there were.
func drain(r sqldriver.Rows) (sqldriver.Result, error) {
	dest := make([]sqldriver.Value, len(r.Columns()))
	var n int64
	for {
		err := r.Next(dest)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			return nil, err
		}
		n++
	}
	if err := r.Close(); err != nil {
		return nil, err
	}
	return sqldriver.RowsAffected(n), nil
}

// noRows is the empty result of a SET sent through Query.
type noRows struct{}

func (noRows) Columns() []string            { return nil }
func (noRows) Close() error                 { return nil }
func (noRows) Next([]sqldriver.Value) error { return io.EOF }

// beginSQL maps database/sql transaction options to a BEGIN statement.
func beginSQL(opts sqldriver.TxOptions) (string, error) {
	b := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		b += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		b += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		b += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable:
		b += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", fmt.Errorf("pgwait: isolation level %v is not supported by PostgreSQL", sql.IsolationLevel(opts.Isolation))
	}
	if opts.ReadOnly {
		b += " READ ONLY"
	}
	return b, nil
}

var errTxClosed = errors.New("pgwait: transaction already closed")
