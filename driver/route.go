package driver

import (
	"context"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
)

// Routing: which server runs a statement outside a transaction opened with
// BeginTx, and whether its position is read after it.

// toReplica decides whether a statement outside a transaction goes to a
// replica: only a read the classifier proved read-only (or a query-shaped
// statement the caller forced onto a replica), never one that would leave
// state in the replica's session, and never while the connection is pinned
// to the primary or inside a transaction block opened with SQL.
func (c *Conn) toReplica(ctx context.Context, cls classify.Result) bool {
	if !c.c.hasReplicas() || c.pinned || cls.Pins || c.primaryInBlock() || c.level(ctx).IsPrimary() {
		return false
	}
	route := pgwait.RouteFrom(ctx)
	switch cls.Hint {
	case classify.Primary:
		route = pgwait.RoutePrimary
	case classify.Replica:
		route = pgwait.RouteReplica
	}
	switch route {
	case pgwait.RoutePrimary:
		return false
	case pgwait.RouteReplica:
		return cls.Kind == classify.Read || cls.Query
	}
	return cls.Kind == classify.Read
}

// level is the consistency level a read made with ctx asks for.
func (c *Conn) level(ctx context.Context) pgwait.Level {
	if l, ok := pgwait.LevelFrom(ctx); ok {
		return l
	}
	return c.c.cfg.Level
}

// primaryInBlock reports whether the primary is inside a transaction block
// opened with SQL (BEGIN through Exec) rather than BeginTx: everything then
// stays on the primary until it ends.
func (c *Conn) primaryInBlock() bool {
	return c.primary != nil && c.primary.pg.TxStatus() != 'I'
}

// tracking reports whether statements on the primary read the WAL position
// after they commit. A handle without replicas reads from the primary and
// needs no position, unless the context carries a token to advance.
func (c *Conn) tracking(ctx context.Context) bool {
	return c.c.hasReplicas() || pgwait.TokenFrom(ctx) != nil
}

// captures reports whether a statement run on the primary has its position
// read after it: every statement that commits on its own (whatever the
// classifier thinks of it: a SELECT may call a function that writes), and
// inside a transaction block opened with SQL, the statements that end it
// (COMMIT, END, COMMIT PREPARED ...). Other statements of a block commit
// with its end.
func (c *Conn) captures(ctx context.Context, cls classify.Result) bool {
	if !c.tracking(ctx) {
		return false
	}
	if c.primaryInBlock() {
		return cls.Kind == classify.Transaction
	}
	return cls.Kind != classify.Transaction // BEGIN opens a block; a stray COMMIT does nothing
}

// isScript reports a text of several statements without arguments, which
// cannot be prepared and runs through the simple protocol, as with pgx.
func isScript(cls classify.Result, args []any) bool {
	return cls.Statements > 1 && len(args) == 0
}
