// Package pgwait gives database/sql applications read-your-writes
// consistency on PostgreSQL streaming replicas.
//
// One *sql.DB covers a primary and its replicas. Writes go to the primary, and
// pgwait records the WAL position (LSN) of each commit, read in the same round
// trip as the write. Reads go to a replica; when the replica may not have
// replayed the writes the read must see, pgwait sends PostgreSQL 19's
// WAIT FOR LSN in the same round trip as the query, so the read waits only as
// long as the replica really is behind, and never misses the caller's own
// writes.
//
//	import (
//		"database/sql"
//
//		_ "github.com/pgwait/pgwait/driver"
//	)
//
//	db, err := sql.Open("pgwait",
//		"postgres://app:secret@primary:5432/app?pgwait_replicas=replica1:5432,replica2:5432")
//
// # Connection string
//
// The DSN is a pgx/libpq connection string for the primary, URL or key=value
// form, plus pgwait's own keys, which never reach the server:
//
//	pgwait_replicas      replicas separated by spaces or commas: host,
//	                     host:port or [ipv6]:port, inheriting everything but
//	                     host and port from the primary's settings; or full
//	                     postgres:// URLs, each running to the next space
//	pgwait_wait_timeout  how long a read waits for its replica (default 1s,
//	                     at most MaxWaitTimeout, WAIT FOR LSN's 2^31-1 ms)
//	pgwait_on_timeout    primary (default: read from the primary) or error
//	pgwait_scope         handle (default), conn or token: see Scope
//	pgwait_wait_method   auto (default), wait_for_lsn or poll: see WaitMethod
//	pgwait_balance       least_lag (default), round_robin or random: see Balance
//	pgwait_no_replica    primary (default) or error: reads when no replica is
//	                     in rotation
//	pgwait_health_interval  how often replicas are probed (default 1s)
//	pgwait_replica_timeout  how long a replica may stay silent before it is
//	                     treated as sick (default 2s): see Config.ReplicaTimeout
//	pgwait_replica_discovery  off (default) or dns: a replica given by host
//	                     name is every address the name resolves to; see
//	                     "The replica set can change"
//	pgwait_consistency   the reads' default level: ryw (default), eventual,
//	                     global, primary or bounded:DURATION; see
//	                     "Consistency levels"
//	pgwait_max_replica_lag  keep replicas further behind than this out of
//	                     every read's choice (default: no bound)
//	pgwait_write_visibility  how many replicas a write waits for before it
//	                     returns (default 0); see WithVisibility
//
// A replica given by host is connected to exactly as pgx would connect to
// that host with the primary's settings: sslmode=verify-full checks the
// replica's certificate against the replica's own host name or IP address,
// sslmode=prefer and allow fall back to plaintext per replica, and a primary
// on a Unix socket still gives TCP replicas the TLS the sslmode asks for. A
// replica URL may name several hosts (postgres://ro@r1,r2/app), commas
// included, so put a space, not a comma, after it; it may not hold pgwait_*
// keys. Credentials and keyword=value settings are refused in the list:
//
//	host=primary user=app sslmode=verify-full pgwait_replicas='replica1 replica2:5433 postgres://ro@r3,r4/app'
//	postgres://app@primary/app?pgwait_replicas=replica1,replica2:5433%20postgres://ro@r3,r4/app
//
// ParseConfig reads it into a Config, which driver.NewConnector turns into a
// connector for sql.OpenDB; Config.FormatDSN writes it back, and
// Config.String does with passwords hidden. Errors never show a password.
//
// # Guarantees
//
//   - A statement goes to a replica only when pgwait can prove it reads:
//     SELECT, WITH, VALUES, TABLE or SHOW without locking clauses,
//     data-modifying WITH, SELECT INTO, or functions known to write (nextval,
//     advisory locks...). Everything else runs on the primary, whether it
//     comes through Exec or Query (ORMs send INSERT ... RETURNING through
//     Query). Should a replica still refuse a statement as a write (SQLSTATE
//     25006, from a function pgwait could not know writes), the primary runs
//     it: the refusal happens before anything is written.
//   - A read sees every write its scope covers that committed before the read
//     started: by default every write made through the same *sql.DB, on any
//     of its pooled connections. A Token extends this across handles,
//     requests and processes.
//   - What a read must see comes from what the primary answered, never from
//     guessing what a statement does: every statement that commits on the
//     primary outside a transaction (reads included: SELECT f() may call a
//     function that writes), every COMMIT of a transaction that was not read
//     only, and the end of a transaction block opened with SQL, has the
//     primary's WAL position read after its commit, in the same round trip.
//   - Reads do not go back in time: a read waits until its replica has
//     replayed at least what earlier reads through the handle (or, in conn
//     and token scope, the connection) saw. A read the primary served has
//     the primary's WAL position read after it, and, while the handle has
//     more than one replica, a replica read has the replica's replay
//     position (pg_last_wal_replay_lsn()) read after its statement, both
//     in the read's own round trip: a later read, on whatever replica, waits
//     for what the earlier one really saw, not only for what pgwait had
//     confirmed of its replica. A read counts once its rows are read to the
//     end or closed; a one-row result is complete before the call returns.
//     With one replica there is nothing to ask, as its replay only moves
//     forward; except across a crash of the replica, which may open for
//     reads before it has replayed again what it had beyond the position a
//     probe last confirmed. In simple_protocol, a query text of several
//     statements counts only as what pgwait had confirmed of its replica.
//   - A read never waits forever: after the wait timeout it reads from the
//     primary, or fails with a *WaitTimeoutError, as configured. A context
//     deadline shortens the wait so that the connection survives it.
//   - Read-only transactions (sql.TxOptions{ReadOnly: true}) run on a replica
//     and wait, in the same round trip as BEGIN, before their first
//     statement. All other transactions run on the primary, and their COMMIT
//     captures the LSN.
//   - Errors from PostgreSQL come back as *pgconn.PgError, unwrapped, so that
//     errors.As and ORMs' error translation keep working.
//
// # Consistency levels
//
// Each read asks for a Level, from its context (WithLevel; OnPrimary asks
// for Primary) or the handle's pgwait_consistency:
//
//	level                guarantee                                 cost                                   on timeout
//	ReadYourWrites       every write of its scope (handle, conn,    a wait in the read's round trip when   OnTimeout: the primary,
//	(default)            token) and never less than earlier reads   its replica is behind (with several    or *WaitTimeoutError
//	                                                                replicas, every replica read also
//	                                                                reads the replay position after it,
//	                                                                same round trip)
//	Eventual             whatever its replica has replayed          nothing: no wait                       -
//	BoundedStaleness(d)  everything committed d (to within the      nothing: no wait; a replica measured   -
//	                     health interval) before it ran              at most d behind, else the primary
//	Global               every write committed anywhere before      one primary round trip, shared by      OnTimeout
//	                     it started (other handles, processes)      concurrent reads, then a wait
//	Primary              everything                                  the primary serves it                  -
//
// A replica's lag in time is measured from probes, not from
// pg_last_xact_replay_timestamp() (which stops moving when the primary is
// idle and compares two servers' clocks): the handle samples the primary's
// WAL position on the health interval, and a replica that had replayed
// position R when last probed has everything the primary had at the latest
// sample no further than R, so it is at most that long behind. The bound is
// safe (never under the truth) and within a health interval or two of it.
// pgwait_max_replica_lag keeps a replica measured further behind than that
// out of every read's choice, whatever the level, until it is back under
// three quarters of the bound (Stats.LagExclusions).
//
// A write can ask to be visible on replicas before it returns
// (WithVisibility, pgwait_write_visibility): after its commit pgwait waits,
// with WAIT FOR LSN, until that many replicas in rotation have replayed it,
// within the wait timeout, so that other processes reading replicas without
// a token see it once the call returns. A write not visible in time still
// returns success (it committed), counted in Stats.VisibilityTimeouts. See
// WithVisibility for how this compares with synchronous_commit=remote_apply.
//
// # Session state
//
// A pooled connection's statements may run on several servers, each with a
// session of its own; the session that answers must hold the state the
// application set. pgwait's rule:
//
//   - SET, RESET, SET ROLE and SET SESSION AUTHORIZATION, sent as statements
//     of their own, run on the primary and on every replica connection the
//     pooled connection holds, and are replayed on those it opens later.
//   - A statement that leaves state only the server running it can hold pins
//     the connection to the primary: all its later statements, reads and
//     read-only transactions included, run there, until DISCARD ALL (which
//     also closes its replica connections, so that new ones start clean).
//     These are: temporary tables, sequences and views (CREATE TEMP ...,
//     SELECT INTO), PREPARE, DECLARE, LISTEN, LOAD, session advisory locks
//     (pg_advisory_lock, pg_try_advisory_lock and their _shared forms),
//     set_config(), setseed(), dblink_connect and lo_open, wherever they
//     appear in the statement (in a CTE or as an argument too), and a SET
//     inside a transaction block (a ROLLBACK undoes it on the primary only).
//     Stats.PinnedConns counts them. For a tenant switch that keeps reads on
//     replicas, use SET app.tenant = '...' rather than set_config.
//   - pgwait sees only what the statement's text shows. A user function that
//     changes session state (calls set_config, takes a session advisory lock,
//     creates a temporary table) must run on the primary, and its effect is
//     not carried to replicas: call it with OnPrimary or a
//     /* pgwait:primary */ hint, and issue the state the reads need as SET
//     statements, or keep such a session on one server with OnPrimary.
//
// # Tokens
//
// A token's text comes from outside (a header, a cookie, a queue message),
// so pgwait never trusts it to be honest. A token ahead of every position
// the handle has seen from the primary is checked against the primary's
// current WAL position (one primary round trip); a token still ahead of it,
// or on a timeline the primary does not have, was not issued by the
// cluster's current history (it is forged, or comes from a cluster since
// restored or rebuilt): it is reset (Token.Set) to the handle's position
// and counted in Stats.TokensReset, before any wait. A wait that times out
// takes its replica out of the rotation only when the position waited for
// is one the primary really reached and the whole wait timeout ran, so one
// caller's token never sends everyone's reads to the primary. A write made
// with a token on another timeline than the primary's moves the token onto
// the primary's timeline (Token.AdvanceOn), so the caller's own writes are
// always covered. The packages pgwaithttp, pgwaitgrpc and pgwaitjob carry
// tokens through HTTP, gRPC and background jobs, refusing oversized or
// unparsable ones before any query.
//
// # Replicas that fail, lag or get promoted
//
// Each handle probes each replica on the health interval, each in a loop of
// its own. A replica that cannot be reached, is no longer in recovery
// (promoted), or lets a read's wait time out leaves the rotation; reads go to
// the other replicas, or the primary, until a probe finds it healthy and
// caught up again, with backoff (doubling, up to ten health intervals) while
// it keeps failing. A replica out only for lagging still serves the reads
// that need no wait. A read whose replica fails mid-way runs again on the
// primary (a read is safe to repeat; a write is never repeated); one that
// replay cancelled (a recovery conflict: SQLSTATE 40001, 40P01 or 57P04
// "conflict with recovery") runs again on another replica, or the primary,
// counted in Stats.RecoveryConflicts, also when the conflict comes after
// the replica sent the first row (a result is read past its first row
// before it is handed out, so a one-row result is complete); only a
// conflict after rows were handed out reaches the caller, from Next or
// Close. Inside a caller's transaction the error is returned as it is. A replica out of connection slots (53300)
// stays in rotation. Probes also tell reads how far each replica has
// replayed, so that most reads need no wait at all. driver.ReplicasOf
// reports each replica's state, why and since when it is out, its last
// error and its lag; the modules pgwaitprom (a Prometheus collector) and
// pgwaitotel (OpenTelemetry metrics) export it and Stats as metrics.
//
// A sick replica costs a read at most its wait plus the replica timeout
// (pgwait_replica_timeout, 2 s by default), whether or not the caller's
// context has a deadline: connecting to a replica is bounded by it, and a
// replica that has not answered a read within its wait plus the replica
// timeout, and answered no health probe meanwhile, has its connection
// abandoned and leaves the rotation, and the read runs on the primary. A
// replica that keeps answering probes is slow, not sick: its reads are not
// cut short. Connections to replicas are never pinged when database/sql
// hands a connection to its next caller, so a frozen replica never holds up
// a write.
//
// The replica set can change on a live handle: (*driver.Connector).AddReplica
// adds one (it enters the rotation at its first good probe) and
// RemoveReplica takes one out (no new read starts on it; reads in progress
// finish and its connections close as their pooled connections are reused).
//
// With pgwait_replica_discovery=dns the set follows DNS: a replica given by
// host name (in pgwait_replicas or to AddReplica; host, host:port or a URL
// with one host) is every address the name resolves to, each a replica of
// its own, and the name is resolved again on every health interval. An
// address that appears is added as AddReplica adds (it serves reads from its
// first good probe); one that vanishes is removed as RemoveReplica removes
// (drained, not cut). A replica fleet behind one name (a Kubernetes headless
// service, a Route 53 multivalue record) is thus followed without restarts.
// The name is first resolved when the handle opens its first connection;
// until a first probe of one of its replicas succeeds, reads go as when no
// replica is in rotation (pgwait_no_replica). Each replica dials its own
// address with the name's settings otherwise unchanged: sslmode=verify-full
// checks its certificate against the name, not the address, and the password
// file entry is the name's. Replica status (driver.ReplicasOf) lists each
// address, with the name it was found under (ReplicaStatus.Name);
// RemoveReplica of the name removes them all. An address already in the set
// is not added twice. A failed lookup changes nothing (its error becomes the
// last error of the name's replicas; replicas that went away fail their
// probes and leave the rotation meanwhile). IP addresses and Unix socket
// directories are never resolved, and discovery is off by default, since a
// name like localhost resolving to both ::1 and 127.0.0.1 would otherwise
// become two replicas. Config.Resolver replaces the system's resolver: a
// service registry's client, or a fixed answer in tests; its answers may
// carry their own ports (address:port), as pgconn.LookupFunc's may.
//
// # Behind a connection pooler
//
// Behind PgBouncer in session pooling pgwait works as with direct
// connections. pgwait adds the startup parameter
// client_connection_check_interval to replica connections; a pooler that
// refuses it (PgBouncer does, unless told to ignore it) gets connections
// without it, from the first refusal on. In transaction pooling, where a
// server connection serves other clients between transactions, use an exec
// mode that leaves no named prepared statement on the server
// (default_query_exec_mode=exec, simple_protocol or cache_describe; see
// "Query exec modes"), and no db.Prepare, as with pgx stdlib: the default
// cache_statement mode needs PgBouncer 1.21 or later with
// max_prepared_statements. Without, some statements find their prepared
// statement left behind on another server connection, and fail before they
// run: outside a transaction pgwait prepares such a statement afresh and
// runs it once more (as after a schema change); if that fails too, or
// inside a transaction, the statement returns an error that matches
// ErrPoolerPreparedStatements (errors.Is), says what to configure, and wraps
// the server's *pgconn.PgError (SQLSTATE 26000 or 42P05). Tested against
// Debian 12's PgBouncer 1.18 in session pooling and, in those three modes,
// transaction pooling, and for that error in cache_statement behind
// transaction pooling.
//
// # The primary's outage
//
// With replicas, a pooled connection opens a server connection only when a
// statement needs it: a connection that only reads never dials the primary.
// While the primary is down, writes fail at once with the connection error,
// and reads go on on the replicas with the same guarantee as always: each
// waits until its replica has replayed what its scope requires. A write
// acknowledged just before the primary died that had not reached the
// replicas (asynchronous replication) cannot be read from them: a read whose
// scope requires it waits its wait timeout and then fails (or returns a
// *WaitTimeoutError), since the primary it would fall back to is down; it
// never reads without it. A token newer than anything the handle saw cannot
// be checked against the primary then: its read waits for it, and its
// timeout ejects no replica. When the primary returns (the same node, or
// another one a multi-host DSN with target_session_attrs=read-write finds)
// writes resume on the same *sql.DB.
//
// On connecting to the primary pgwait reads its system identifier and
// timeline. When they change (a replica was promoted; the DSN may name every
// node with target_session_attrs=read-write) the LSNs remembered from the old
// primary are set aside, and tokens from the old timeline wait only for what
// the new primary kept.
//
// # Differences from pgx stdlib
//
// pgwait behaves as pgx/v5/stdlib does, value by value and error by error;
// internal/conformance runs the same operations through both, in each exec
// mode, and lists the deliberate differences (conformance.Deliberate and,
// per mode, DeliberateIn). They are:
//
//   - In cache_statement, a statement whose cached plan went stale
//     (SQLSTATE 0A000, cached plan must not change result type, after ALTER
//     TABLE on the primary or replayed on a replica; or 26000 after a
//     DEALLOCATE pgwait did not see) is prepared again and run again,
//     outside a transaction block, since nothing was executed. pgx stdlib
//     reports the error once per cached statement, and for ever for a Stmt
//     from db.Prepare (in every mode).
//   - In cache_statement, DISCARD ALL and DEALLOCATE ALL sent as SQL: pgwait
//     forgets its prepared statements; pgx stdlib fails once per cached
//     statement with 26000. (The other modes name no statement, and there
//     pgwait, like pgx stdlib, reports a cached description gone stale once.)
//   - Exec without arguments of a statement with parameters ($1) reports
//     "expected 1 arguments, got 0" (in exec, the server's 08P01; in
//     simple_protocol, for a read, pgx's "insufficient arguments"); pgx
//     stdlib's Exec without arguments always takes the simple protocol and
//     gets the server's 42P02.
//   - COPY ... FROM STDIN through database/sql fails at once; pgx stdlib
//     waits until the context ends. Use pgx's CopyFrom through sql.Conn.Raw
//     and (*driver.Conn).Primary. COPY ... TO STDOUT runs as with pgx stdlib.
//   - A context ended while rows are read closes that server connection
//     only; the database/sql connection stays usable (pgx stdlib's does not).
//   - Session views (pg_prepared_statements, pg_cursors) read by a statement
//     routed to a replica show the replica's session.
//   - sql.Conn.Raw hands out pgwait's *driver.Conn, not a *stdlib.Conn; its
//     Primary and Replica methods give each server's *pgx.Conn.
//   - pgx.QueryResultFormats and QueryResultFormatsByOID are refused as
//     query arguments. A pgx.QueryExecModeSimpleProtocol argument before
//     arguments needs default_query_exec_mode=simple_protocol (see Query
//     exec modes).
//   - In cache_describe and describe_exec a described statement is executed
//     by sending its text again, unnamed, with the described parameter
//     types, rather than by binding the unnamed statement described (pgx):
//     the same plan and outcome, and pgwait's own statements can share the
//     round trip (a pooler may also switch server connections in between).
//
// # Query exec modes
//
// default_query_exec_mode in the connection string (or a pgx.QueryExecMode
// passed as a statement's first argument, as with pgx) chooses how
// statements reach the servers, as with pgx stdlib: cache_statement (the
// default), cache_describe, describe_exec, exec or simple_protocol; the
// replicas given by host inherit the primary's. The last ones are what
// PgBouncer in transaction pooling, or an ORM (GORM's PreferSimpleProtocol),
// asks for. In every mode a read's WAIT FOR LSN rides in the read's own
// round trip, and a write's WAL position is read after its commit in the
// write's round trip:
//
//   - cache_statement: each statement is prepared under a name once per
//     connection; a read is WAIT FOR LSN, Bind, Execute: one round trip (two
//     the first time, the statement prepared after the wait).
//   - cache_describe: each statement is described once per connection (with
//     the unnamed statement), then sent unnamed with the described parameter
//     types behind the wait: one round trip (two the first time).
//   - describe_exec: the statement is described each time, after the wait,
//     then executed: two round trips, as with pgx.
//   - exec: unnamed, parameter types chosen from the Go values, text
//     formats: one round trip.
//   - simple_protocol: pgx's own sanitizer interpolates the arguments; a
//     read is "WAIT FOR LSN ...; <statement>" sent as one simple query, the
//     first result being the wait's; a single data statement is written as
//     "BEGIN; <statement>; COMMIT; SELECT pg_current_wal_insert_lsn()" in
//     one simple query; any other statement runs alone and the position is
//     read in a second round trip (a script is one implicit transaction,
//     whose position could only be read before its commit).
//
// Outside cache_statement pgwait's own statements (BEGIN, COMMIT, the
// position query) are unnamed, or simple queries in simple_protocol: no
// named statement is left on a server, as PgBouncer in transaction pooling
// requires. A Stmt from database/sql's Prepare is a named prepared statement
// in every mode, as with pgx stdlib; once closed it is deallocated on the
// primary at once, and on a replica before that connection's next read.
// pgwait reaches pgx's sanitizer through a pgx batch, which interpolates
// only on a connection whose default mode is simple_protocol: a
// pgx.QueryExecModeSimpleProtocol argument before arguments, on a
// connection of another mode, fails with an error that says so (always, so
// that whether it runs does not depend on replication lag). The other
// modes, and simple_protocol without arguments, may be passed to any
// statement. The health probes, and reads that poll (pgwait_wait_method=
// poll, servers before 19), use the extended protocol, unnamed, in every
// mode.
//
// # Overrides
//
// OnPrimary and OnReplica force a route for the statements of a context; the
// SQL comments /* pgwait:primary */ and /* pgwait:replica */ do the same for
// one statement.
package pgwait
