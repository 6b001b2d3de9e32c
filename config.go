package pgwait

import (
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// TimeoutPolicy says what a read does when its replica has not replayed the
// writes it must see within the wait timeout.
type TimeoutPolicy uint8

const (
	// TimeoutPrimary reads from the primary instead (the default): always
	// fresh, at the primary's cost.
	TimeoutPrimary TimeoutPolicy = iota
	// TimeoutFail returns a *WaitTimeoutError.
	TimeoutFail
)

var timeoutNames = []string{"primary", "error"}

// String returns the DSN spelling: "primary" or "error".
func (p TimeoutPolicy) String() string { return name(timeoutNames, p) }

// Scope says which writes a read must see.
type Scope uint8

const (
	// ScopeHandle (the default): every write committed through the same
	// *sql.DB before the read started. `db.Exec` then `db.Query` on another
	// pooled connection sees the write.
	ScopeHandle Scope = iota
	// ScopeConn: writes made on the same connection (sql.Conn, sql.Tx, or the
	// pooled connection database/sql happened to pick) and the context's
	// Token. Reads wait less, but a plain `db.Exec` then `db.Query` may land
	// on two connections: carry a Token for those.
	ScopeConn
	// ScopeToken: only the context's Token. Reads without a token never wait.
	ScopeToken
)

var scopeNames = []string{"handle", "conn", "token"}

// String returns the DSN spelling: "handle", "conn" or "token".
func (s Scope) String() string { return name(scopeNames, s) }

// WaitMethod says how a replica is made to catch up.
type WaitMethod uint8

const (
	// WaitAuto uses WAIT FOR LSN on PostgreSQL 19 and later, and polling on
	// older servers (the default).
	WaitAuto WaitMethod = iota
	// WaitForLSN always uses WAIT FOR LSN, sent in the same round trip as the
	// query.
	WaitForLSN
	// WaitPoll polls pg_last_wal_replay_lsn() with backoff: slower, but works
	// on every PostgreSQL version.
	WaitPoll
)

var waitMethodNames = []string{"auto", "wait_for_lsn", "poll"}

// String returns the DSN spelling: "auto", "wait_for_lsn" or "poll".
func (m WaitMethod) String() string { return name(waitMethodNames, m) }

// Balance says which replica serves a read.
type Balance uint8

const (
	// BalanceLeastLag (the default) prefers a replica already known to have
	// replayed what the read must see, so that no wait is needed; failing
	// that, the replica furthest ahead.
	BalanceLeastLag Balance = iota
	// BalanceRoundRobin gives each connection the next replica in turn.
	BalanceRoundRobin
	// BalanceRandom gives each connection a replica at random.
	BalanceRandom
)

var balanceNames = []string{"least_lag", "round_robin", "random"}

// String returns the DSN spelling: "least_lag", "round_robin" or "random".
func (b Balance) String() string { return name(balanceNames, b) }

// NoReplicaPolicy says what a read does when no replica can serve it.
type NoReplicaPolicy uint8

const (
	// NoReplicaPrimary reads from the primary (the default).
	NoReplicaPrimary NoReplicaPolicy = iota
	// NoReplicaFail returns ErrNoReplica.
	NoReplicaFail
)

var noReplicaNames = []string{"primary", "error"}

// String returns the DSN spelling: "primary" or "error".
func (p NoReplicaPolicy) String() string { return name(noReplicaNames, p) }

// name spells an enumerated setting; names are in the constants' order.
func name[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return strconv.Itoa(int(v))
}

// parseName reads an enumerated setting spelled as one of names.
func parseName[T ~uint8](key, value string, names []string) (T, error) {
	for i, n := range names {
		if value == n {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("pgwait: %s=%q: want %s or %s", key, value, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// Defaults.
const (
	// DefaultWaitTimeout is how long a read waits for its replica.
	DefaultWaitTimeout = time.Second
	// DefaultHealthInterval is how often replicas are probed.
	DefaultHealthInterval = time.Second
)

// Config is a pgwait handle's configuration: one primary, its replicas, and
// the consistency policy. Build one with ParseConfig, adjust it, and pass it
// to driver.NewConnector.
type Config struct {
	// Primary is where writes go. Multi-host DSNs with
	// target_session_attrs=read-write find the primary among several hosts.
	Primary *pgx.ConnConfig
	// Replicas serve reads. With none, pgwait sends everything to the
	// primary.
	Replicas []*pgx.ConnConfig
	// WaitTimeout bounds how long a read waits for its replica to catch up;
	// it is never 0 (a replica wait without a timeout can hang forever).
	WaitTimeout time.Duration
	// OnTimeout says what a read does after WaitTimeout.
	OnTimeout TimeoutPolicy
	// Scope says which writes a read must see.
	Scope Scope
	// WaitMethod says how replicas are made to catch up.
	WaitMethod WaitMethod
	// Balance says which replica serves a read.
	Balance Balance
	// NoReplica says what a read does when no replica can serve it.
	NoReplica NoReplicaPolicy
	// HealthInterval is how often each replica is probed (is it in recovery,
	// how far has it replayed); a replica that fails, was promoted or let a
	// wait time out gets no reads until a probe finds it healthy again, with
	// backoff. 0 means DefaultHealthInterval.
	HealthInterval time.Duration
	// Tracer, when set, is told about every statement pgwait routes.
	Tracer Tracer
}

// DSN keys pgwait reads itself; every other key goes to pgx.
const (
	keyReplicas    = "pgwait_replicas"
	keyWaitTimeout = "pgwait_wait_timeout"
	keyOnTimeout   = "pgwait_on_timeout"
	keyScope       = "pgwait_scope"
	keyWaitMethod  = "pgwait_wait_method"
	keyBalance     = "pgwait_balance"
	keyNoReplica   = "pgwait_no_replica"
	keyHealth      = "pgwait_health_interval"
)

var knownKeys = []string{keyReplicas, keyWaitTimeout, keyOnTimeout, keyScope, keyWaitMethod, keyBalance, keyNoReplica, keyHealth}

// ParseConfig reads a pgx/libpq connection string for the primary (URL or
// key=value form) extended with pgwait's own keys:
//
//	pgwait_replicas      comma-separated replicas: host, host:port, [ipv6]:port
//	                     (user, database, password and TLS come from the
//	                     primary's settings), or full postgres:// URLs
//	pgwait_wait_timeout  how long a read waits for its replica: a Go duration
//	                     ("500ms", "2s") or milliseconds; default 1s
//	pgwait_on_timeout    primary (default) or error
//	pgwait_scope         handle (default), conn or token
//	pgwait_wait_method   auto (default), wait_for_lsn or poll
//	pgwait_balance       least_lag (default), round_robin or random
//	pgwait_no_replica    primary (default) or error: reads when no replica
//	                     is healthy
//	pgwait_health_interval  how often replicas are probed (default 1s)
//
// Errors never repeat the password.
func ParseConfig(dsn string) (*Config, error) {
	primary, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgwait: the primary's connection string: %w", err)
	}
	if primary.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement {
		return nil, fmt.Errorf("pgwait: default_query_exec_mode=%s is not supported: pgwait sends statements with the extended protocol and caches them per connection; remove the setting", primary.DefaultQueryExecMode)
	}
	own := map[string]string{}
	for k, v := range primary.RuntimeParams {
		if strings.HasPrefix(k, "pgwait_") {
			own[k] = v
			delete(primary.RuntimeParams, k)
		}
	}
	cfg := &Config{Primary: primary, WaitTimeout: DefaultWaitTimeout, HealthInterval: DefaultHealthInterval}
	for k, v := range own {
		if err := cfg.set(k, v); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (c *Config) set(key, value string) (err error) {
	switch key {
	case keyReplicas:
		for _, item := range strings.Split(value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			r, err := ReplicaConfig(c.Primary, item)
			if err != nil {
				return err
			}
			c.Replicas = append(c.Replicas, r)
		}
	case keyWaitTimeout:
		c.WaitTimeout, err = parseDuration(key, value, time.Millisecond)
	case keyOnTimeout:
		c.OnTimeout, err = parseName[TimeoutPolicy](key, value, timeoutNames)
	case keyScope:
		c.Scope, err = parseName[Scope](key, value, scopeNames)
	case keyWaitMethod:
		c.WaitMethod, err = parseName[WaitMethod](key, value, waitMethodNames)
	case keyBalance:
		c.Balance, err = parseName[Balance](key, value, balanceNames)
	case keyNoReplica:
		c.NoReplica, err = parseName[NoReplicaPolicy](key, value, noReplicaNames)
	case keyHealth:
		c.HealthInterval, err = parseDuration(key, value, 10*time.Millisecond)
	default:
		keys := append([]string(nil), knownKeys...)
		sort.Strings(keys)
		return fmt.Errorf("pgwait: unknown setting %q; pgwait's settings are %s", key, strings.Join(keys, ", "))
	}
	return err
}

// parseDuration reads a Go duration ("500ms", "2s") or a number of
// milliseconds, of at least least.
func parseDuration(key, value string, least time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if ms, msErr := strconv.ParseInt(value, 10, 64); msErr == nil {
		d, err = time.Duration(ms)*time.Millisecond, nil
	}
	if err != nil || d < least {
		return 0, fmt.Errorf("pgwait: %s=%q: want a duration of at least %v, such as 500ms or 2s", key, value, least)
	}
	return d, nil
}

// ReplicaConfig returns the connection settings of a replica given as
// host, host:port, [ipv6]:port (everything else copied from primary) or as a
// full postgres:// URL.
func ReplicaConfig(primary *pgx.ConnConfig, replica string) (*pgx.ConnConfig, error) {
	if strings.Contains(replica, "://") {
		r, err := pgx.ParseConfig(replica)
		if err != nil {
			return nil, fmt.Errorf("pgwait: replica URL: %w", err)
		}
		return r, nil
	}
	host, port := replica, primary.Port
	if h, p, err := net.SplitHostPort(replica); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("pgwait: replica %q: port %q is not a number from 1 to 65535", replica, p)
		}
		host, port = h, uint16(n)
	} else if strings.Count(replica, ":") == 1 {
		return nil, fmt.Errorf("pgwait: replica %q: want host, host:port or [ipv6]:port", replica)
	}
	if host == "" || strings.ContainsAny(host, " /?#@") {
		return nil, fmt.Errorf("pgwait: replica %q: want host, host:port or [ipv6]:port", replica)
	}
	r := primary.Copy()
	r.Host, r.Port = host, port
	r.Fallbacks = nil
	r.ValidateConnect = nil
	if r.TLSConfig != nil {
		r.TLSConfig = cloneTLSFor(r.TLSConfig, host)
	}
	return r, nil
}

func cloneTLSFor(t *tls.Config, host string) *tls.Config {
	c := t.Clone()
	if c.ServerName != "" && net.ParseIP(host) == nil {
		c.ServerName = host
	}
	return c
}

// Addr returns host:port of a server's settings, for messages and stats.
func Addr(c *pgx.ConnConfig) string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}
