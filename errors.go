package pgwait

import (
	"errors"
	"fmt"
	"time"
)

// ErrWaitTimeout is matched (errors.Is) by the error a read returns when the
// replica did not replay the LSN it had to wait for within the wait timeout
// and the timeout policy is TimeoutFail.
var ErrWaitTimeout = errors.New("pgwait: replica did not catch up in time")

// ErrNoReplica is returned by reads when no replica can serve them and the
// policy forbids reading from the primary instead.
var ErrNoReplica = errors.New("pgwait: no replica available")

// WaitTimeoutError reports a replica that had not replayed LSN after Timeout.
type WaitTimeoutError struct {
	Replica string        // host:port of the replica
	LSN     LSN           // the position the read waited for
	Timeout time.Duration // how long it waited
}

// Error says which replica fell behind, and what to change.
func (e *WaitTimeoutError) Error() string {
	return fmt.Sprintf("pgwait: replica %s did not replay WAL up to %s within %s; raise pgwait_wait_timeout, or set pgwait_on_timeout=primary to read from the primary instead", e.Replica, e.LSN, e.Timeout)
}

// Is makes errors.Is(err, ErrWaitTimeout) true.
func (e *WaitTimeoutError) Is(target error) bool { return target == ErrWaitTimeout }

// ErrPoolerPreparedStatements is matched (errors.Is) by the error a statement
// returns when a named prepared statement pgwait made on a connection is
// gone from it (SQLSTATE 26000), or a name pgwait frees before it prepares
// it is taken (42P05): a pooler in front of the server, such as PgBouncer in
// transaction pooling before 1.21 or without max_prepared_statements, gave
// the connection another server connection between two statements. The
// error also wraps the server's *pgconn.PgError. Use
// default_query_exec_mode=exec, simple_protocol or cache_describe (and no
// db.Prepare), or PgBouncer 1.21 or later with max_prepared_statements.
var ErrPoolerPreparedStatements = errors.New("pgwait: a connection pooler lost the prepared statements")
