package pgwait

import "time"

// Server says which server ran a statement.
type Server uint8

const (
	// ServerPrimary is the primary.
	ServerPrimary Server = iota
	// ServerReplica is a replica.
	ServerReplica
)

// String returns "primary" or "replica".
func (s Server) String() string {
	if s == ServerReplica {
		return "replica"
	}
	return "primary"
}

// Event describes one statement pgwait routed, for a Tracer.
type Event struct {
	// SQL is the statement's text.
	SQL string
	// Server is where it ran, and Addr that server's host:port.
	Server Server
	Addr   string
	// Write is true when the statement was sent as a write (its commit LSN
	// captured), and Committed the LSN captured.
	Write     bool
	Committed LSN
	// WaitedFor is the LSN the replica was asked to reach before the
	// statement (0: no wait), Waited how long that took, and WaitStatus the
	// outcome: "success", "timeout", "not in recovery", or "" without a wait.
	WaitedFor  LSN
	Waited     time.Duration
	WaitStatus string
	// Fallback is set when a read meant for a replica ran on the primary, and
	// says why: "timeout", "promoted", "replica error", "no replica",
	// "read-only violation".
	Fallback string
	// Err is the statement's error, if any.
	Err error
}

// A Tracer is told about every statement pgwait routes, once it has run (for
// rows, once they are returned: the commit LSN of an INSERT ... RETURNING is
// known only after its rows are read). It is called on the caller's
// goroutine and must be quick; use it to log or export metrics. pgwait
// itself never logs.
type Tracer interface {
	TraceStatement(Event)
}

// TracerFunc adapts a function to Tracer.
type TracerFunc func(Event)

// TraceStatement calls f(e).
func (f TracerFunc) TraceStatement(e Event) { f(e) }
