// Package sqlmwcompat proves that pgwait works behind github.com/ngrok/sqlmw,
// the database/sql middleware that wraps a driver with an interceptor: its
// tests, against a real primary and replica, show read-your-writes and
// routing through the wrapped driver, and pin down what the wrapper hides
// (sql.Conn.Raw no longer reaches pgwait's *driver.Conn, so driver.StatsOf
// fails; the interceptor's ConnectorConnect sees pgwait's *driver.Connector,
// whose Stats still work). It has no code of its own.
package sqlmwcompat
