package pgwait

import "context"

type contextKey int

const (
	tokenKey contextKey = iota
	routeKey
	levelKey
	visibilityKey
)

// WithToken returns a context that carries t: reads made with it wait for t's
// LSN, and writes made with it advance t.
func WithToken(ctx context.Context, t *Token) context.Context {
	return context.WithValue(ctx, tokenKey, t)
}

// TokenFrom returns the token ctx carries, or nil.
func TokenFrom(ctx context.Context) *Token {
	t, _ := ctx.Value(tokenKey).(*Token)
	return t
}

// Route says which server a statement goes to.
type Route uint8

const (
	// RouteAuto lets pgwait decide: statements it can prove read-only go to a
	// replica, everything else to the primary.
	RouteAuto Route = iota
	// RoutePrimary sends every statement to the primary.
	RoutePrimary
	// RouteReplica sends query-shaped statements (SELECT, WITH, VALUES, TABLE,
	// SHOW) to a replica even when pgwait cannot prove them read-only, for
	// example because they lock rows or call a function pgwait knows to write.
	// Statements that are writes by their kind (INSERT, UPDATE, DDL...) still
	// go to the primary, and a replica's refusal to write (SQLSTATE 25006)
	// sends the statement on to the primary.
	RouteReplica
)

// String returns "auto", "primary" or "replica".
func (r Route) String() string {
	switch r {
	case RoutePrimary:
		return "primary"
	case RouteReplica:
		return "replica"
	}
	return "auto"
}

// OnPrimary returns a context whose statements all run on the primary.
func OnPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, routeKey, RoutePrimary)
}

// OnReplica returns a context whose query-shaped statements run on a replica;
// see RouteReplica.
func OnReplica(ctx context.Context) context.Context {
	return context.WithValue(ctx, routeKey, RouteReplica)
}

// RouteFrom returns the route ctx forces, or RouteAuto.
func RouteFrom(ctx context.Context) Route {
	r, _ := ctx.Value(routeKey).(Route)
	return r
}

// WithVisibility returns a context whose writes return only once n replicas
// in rotation (all of them, when n is at least their number) have replayed
// them, or the wait timeout has passed: then processes that read replicas
// without a token see the write as soon as the call returns. After the
// commit pgwait sends WAIT FOR LSN to each replica in turn, within the wait
// timeout in all. A write that is not visible in time still returns
// success (it committed: it must not be retried), counted in
// Stats.VisibilityTimeouts. 0 turns it off for ctx; see also
// pgwait_write_visibility.
//
// Unlike synchronous_commit=remote_apply, which makes the primary wait for
// the standbys named in synchronous_standby_names before it reports the
// commit, this costs nothing on the server, applies per call, waits for
// whichever replicas pgwait reads from, and never blocks the primary's
// other sessions; but the commit is already visible on the primary (and to
// its readers) while the call waits.
func WithVisibility(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, visibilityKey, max(n, 0))
}

// VisibilityFrom returns the number of replicas ctx's writes wait for, and
// whether ctx says.
func VisibilityFrom(ctx context.Context) (int, bool) {
	n, ok := ctx.Value(visibilityKey).(int)
	return n, ok
}
