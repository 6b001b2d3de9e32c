package pgwait

import "context"

type contextKey int

const (
	tokenKey contextKey = iota
	routeKey
	levelKey
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
