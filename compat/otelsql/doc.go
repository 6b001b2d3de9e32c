// Package otelsqlcompat proves that pgwait works behind
// github.com/XSAM/otelsql, the OpenTelemetry instrumentation of
// database/sql: its tests, against a real primary and replica, show spans
// recorded, read-your-writes and routing through the wrapper, trace context
// comments (WithSQLCommenter) not upsetting routing, and pgwait's
// *driver.Conn still reachable from sql.Conn.Raw through otelsql's Raw method.
// It has no code of its own.
package otelsqlcompat
