package pgwait

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// Defaults and bounds.
const (
	// DefaultWaitTimeout is how long a read waits for its replica.
	DefaultWaitTimeout = time.Second
	// MinWaitTimeout and MaxWaitTimeout bound Config.WaitTimeout. WAIT FOR
	// LSN takes its timeout in whole milliseconds, below 2^31.
	MinWaitTimeout = time.Millisecond
	MaxWaitTimeout = (1<<31 - 1) * time.Millisecond
	// DefaultHealthInterval is how often replicas are probed.
	DefaultHealthInterval = time.Second
	// MinHealthInterval and MaxHealthInterval bound Config.HealthInterval.
	MinHealthInterval = 10 * time.Millisecond
	MaxHealthInterval = 24 * time.Hour
	// DefaultReplicaTimeout is how long a replica may stay silent; see
	// Config.ReplicaTimeout.
	DefaultReplicaTimeout = 2 * time.Second
	// MinReplicaTimeout and MaxReplicaTimeout bound Config.ReplicaTimeout.
	MinReplicaTimeout = 10 * time.Millisecond
	MaxReplicaTimeout = time.Hour
)

// Config is a pgwait handle's configuration: one primary, its replicas, and
// the consistency policy. Build one with ParseConfig, adjust it, and pass it
// to driver.NewConnector, which checks it with Validate. FormatDSN writes it
// back as a connection string, String does so with passwords hidden, and
// Copy copies it.
type Config struct {
	// Primary is where writes go. Multi-host DSNs with
	// target_session_attrs=read-write find the primary among several hosts.
	Primary *pgx.ConnConfig
	// Replicas serve reads. With none, pgwait sends everything to the
	// primary. Build them with ReplicaConfig or pgx.ParseConfig.
	Replicas []*pgx.ConnConfig
	// WaitTimeout bounds how long a read waits for its replica to catch up:
	// from MinWaitTimeout to MaxWaitTimeout; 0 means DefaultWaitTimeout (a
	// replica wait without a timeout could hang forever).
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
	// backoff. From MinHealthInterval to MaxHealthInterval; 0 means
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// ReplicaTimeout bounds how long a replica may stay silent before pgwait
	// treats it as sick: connecting to it, and answering a read beyond the
	// read's wait (a read's first row is due within its wait plus
	// ReplicaTimeout, or, while the replica keeps answering the health
	// probes, within each further ReplicaTimeout: a slow query on a healthy
	// replica is not cut short). A replica that lets it pass has its
	// connection abandoned and leaves the rotation, and the read falls back
	// as after a replica error. From MinReplicaTimeout to MaxReplicaTimeout;
	// 0 means DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// MaxReplicaLag, when set, keeps a replica measured more than
	// MaxReplicaLag behind the primary (from probes; see Level) out of
	// every read's choice, whatever its level, until it is back under three
	// quarters of it; Stats.LagExclusions counts the times. 0 means no
	// bound. At least MinReplicaTimeout; choose a few health intervals at
	// least, since lag is measured to within one or two.
	MaxReplicaLag time.Duration
	// WriteVisibility is the number of replicas a write waits for, after its
	// commit, before it returns, when its context does not say
	// (WithVisibility); 0 (the default) waits for none.
	WriteVisibility int
	// Level is the consistency of reads whose context asks for none
	// (WithLevel); the zero value is ReadYourWrites.
	Level Level
	// Tracer, when set, is told about every statement pgwait routes. It has
	// no DSN form: FormatDSN leaves it out.
	Tracer Tracer
	// Discovery says whether a replica given by host name stands for every
	// address the name resolves to (DiscoveryDNS), followed as it changes.
	Discovery Discovery
	// Resolver, when set, resolves the host names of replicas under
	// DiscoveryDNS instead of net.DefaultResolver. It has no DSN form:
	// FormatDSN leaves it out.
	Resolver Resolver
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
	keyReplicaTO   = "pgwait_replica_timeout"
	keyLevel       = "pgwait_consistency"
	keyMaxLag      = "pgwait_max_replica_lag"
	keyVisibility  = "pgwait_write_visibility"
	keyDiscovery   = "pgwait_replica_discovery"
	ownPrefix      = "pgwait_"
)

var knownKeys = []string{keyReplicas, keyWaitTimeout, keyOnTimeout, keyScope, keyWaitMethod, keyBalance, keyNoReplica, keyHealth, keyReplicaTO, keyLevel, keyMaxLag, keyVisibility, keyDiscovery}

// ParseConfig reads a pgx/libpq connection string for the primary (URL or
// keyword=value form) extended with pgwait's own keys:
//
//	pgwait_replicas      the replicas, separated by spaces or commas (see
//	                     below)
//	pgwait_wait_timeout  how long a read waits for its replica: a Go duration
//	                     ("500ms", "2s") or a number of milliseconds, from 1ms
//	                     to MaxWaitTimeout (24.8 days); default 1s
//	pgwait_on_timeout    primary (default) or error
//	pgwait_scope         handle (default), conn or token
//	pgwait_wait_method   auto (default), wait_for_lsn or poll
//	pgwait_balance       least_lag (default), round_robin or random
//	pgwait_no_replica    primary (default) or error: reads when no replica
//	                     is healthy
//	pgwait_health_interval  how often replicas are probed, as
//	                     pgwait_wait_timeout, from 10ms to 24h; default 1s
//	pgwait_consistency   the reads' default consistency level: ryw (default),
//	                     eventual, global, primary or bounded:DURATION; see
//	                     Level
//	pgwait_write_visibility  how many replicas a write waits for, after its
//	                     commit, before it returns (default 0); see
//	                     WithVisibility
//	pgwait_max_replica_lag  keep replicas more than this behind the primary
//	                     out of every read's choice (default: no bound); see
//	                     Config.MaxReplicaLag
//	pgwait_replica_timeout  how long a replica may stay silent (connecting,
//	                     or answering a read beyond its wait) before it is
//	                     treated as sick: see Config.ReplicaTimeout; from
//	                     10ms to 1h; default 2s
//	pgwait_replica_discovery  off (default) or dns: a replica given by host
//	                     name stands for every address the name resolves
//	                     to, resolved again on every health interval; see
//	                     DiscoveryDNS
//
// Each replica in pgwait_replicas is either
//
//   - host, host:port, [ipv6] or [ipv6]:port: everything else (user,
//     password, database, sslmode and the other TLS settings, runtime
//     parameters) comes from the primary's connection string, and pgx
//     builds the replica's settings exactly as for a direct connection to
//     that host, so that sslmode=verify-full checks the replica's
//     certificate against the replica's own host name or IP address and
//     prefer and allow fall back per replica. The port defaults to the
//     primary's. target_session_attrs does not apply to replicas.
//   - a complete postgres:// or postgresql:// URL, which runs to the next
//     space: commas inside it belong to it, so a multi-host URL
//     (postgres://ro@r1:5432,r2:5432/app) is one replica, to which pgx
//     connects as it would on its own. Put a space, not a comma, after a
//     replica URL. It may not hold pgwait_* settings.
//
// Credentials (user@host) and keyword=value settings are refused in
// pgwait_replicas: give them in the primary's connection string, or write
// the replica as a URL. In a keyword=value connection string, quote the
// list when it holds spaces (pgwait_replicas='db2 postgres://r3/app'); in a
// URL one, percent-encode it as any query value (a space as %20, a replica
// URL's "?", "&" and "=" as %3F, %26 and %3D).
//
// Errors say what to change and never repeat a password, the primary's or
// a replica's.
func ParseConfig(dsn string) (*Config, error) {
	cfg, err := parseConfig(dsn)
	if err != nil {
		return nil, redact(err, dsn)
	}
	return cfg, nil
}

// redact hides in err every password of dsn, its own and its replica URLs':
// pgwait's own errors do not quote them, and pgx's are built without them,
// but a value pgwait quotes may happen to hold one.
func redact(err error, dsn string) error {
	s, perr := parseSettings(dsn)
	if perr != nil {
		return err
	}
	secrets := s.secrets()
	for _, item := range splitReplicas(s[keyReplicas]) {
		if r, perr := parseSettings(item); perr == nil && isURL(item) {
			secrets = append(secrets, r.secrets()...)
		}
	}
	msg := err.Error()
	for _, secret := range secrets {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

func parseConfig(dsn string) (*Config, error) {
	s, err := parseSettings(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgwait: the connection string is %w", err)
	}
	own := settings{}
	for k, v := range s {
		if strings.HasPrefix(k, ownPrefix) {
			own[k] = v
			delete(s, k)
		}
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("pgwait: the connection string: %w", err)
	}
	primary, err := connConfig(s, "the primary's connection string")
	if err != nil {
		return nil, err
	}
	cfg := &Config{Primary: primary, WaitTimeout: DefaultWaitTimeout, HealthInterval: DefaultHealthInterval, ReplicaTimeout: DefaultReplicaTimeout}
	for _, k := range own.keys() {
		if err := cfg.set(k, own[k]); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// connConfig has pgx build the settings s. Its errors never hold a secret:
// pgx quotes the connection string it failed to parse, so the error comes
// from a second parse without the secrets.
func connConfig(s settings, what string) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(s.keywordValue(false))
	if err != nil {
		return nil, fmt.Errorf("pgwait: %s: %w", what, safeError(s))
	}
	return cc, nil
}

// safeError returns the error pgx gives for s, built without s's secrets
// and without the connection string pgx quotes (a value there may be a
// misplaced password): the password is left out, and sslpassword (which pgx
// needs to read an encrypted client key) is handed over through a callback.
func safeError(s settings) error {
	opts := pgx.ParseConfigOptions{ParseConfigOptions: pgconn.ParseConfigOptions{
		GetSSLPassword: func(context.Context) string { return s["sslpassword"] },
	}}
	text := s.without(secretKeys...).keywordValue(false)
	_, err := pgx.ParseConfigWithOptions(text, opts)
	if err == nil {
		return errors.New("pgx refused the settings; check the password and sslpassword settings")
	}
	msg, ok := strings.CutPrefix(err.Error(), "cannot parse `"+text+"`: ")
	if !ok {
		return errors.New("pgx refused the settings")
	}
	for _, secret := range s.secrets() {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	return errors.New(msg)
}

func (c *Config) set(key, value string) (err error) {
	switch key {
	case keyReplicas:
		items := splitReplicas(value)
		for i, item := range items {
			r, err := ReplicaConfig(c.Primary, item)
			if err != nil {
				return fmt.Errorf("pgwait: pgwait_replicas: replica %d of %d: %w", i+1, len(items), err)
			}
			c.Replicas = append(c.Replicas, r)
		}
	case keyWaitTimeout:
		c.WaitTimeout, err = parseDuration(key, value, MinWaitTimeout, MaxWaitTimeout)
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
	case keyDiscovery:
		c.Discovery, err = parseName[Discovery](key, value, discoveryNames)
	case keyHealth:
		c.HealthInterval, err = parseDuration(key, value, MinHealthInterval, MaxHealthInterval)
	case keyReplicaTO:
		c.ReplicaTimeout, err = parseDuration(key, value, MinReplicaTimeout, MaxReplicaTimeout)
	case keyLevel:
		c.Level, err = ParseLevel(value)
	case keyMaxLag:
		c.MaxReplicaLag, err = parseDuration(key, value, MinReplicaTimeout, MaxHealthInterval)
	case keyVisibility:
		n, perr := strconv.ParseUint(value, 10, 16)
		if perr != nil {
			return fmt.Errorf("pgwait: %s=%q: want the number of replicas a write waits for, such as 1 (0: none)", key, value)
		}
		c.WriteVisibility = int(n)
	default:
		return unknownKey(key)
	}
	return err
}

func unknownKey(key string) error {
	keys := append([]string(nil), knownKeys...)
	sort.Strings(keys)
	return fmt.Errorf("pgwait: unknown setting %s; pgwait's settings are %s", quoteShort(key), strings.Join(keys, ", "))
}

// parseDuration reads a Go duration ("500ms", "2s") or a number of
// milliseconds, from least to most.
func parseDuration(key, value string, least, most time.Duration) (time.Duration, error) {
	var d time.Duration
	var err error
	if ms, msErr := strconv.ParseInt(value, 10, 64); msErr == nil {
		if ms < 0 || ms > int64(most/time.Millisecond) {
			err = errors.New("out of range")
		}
		d = time.Duration(ms) * time.Millisecond
	} else if errors.Is(msErr, strconv.ErrRange) {
		err = msErr
	} else {
		d, err = time.ParseDuration(value)
	}
	if err != nil || d < least || d > most {
		return 0, fmt.Errorf("pgwait: %s=%s: want a duration from %v to %v, such as 500ms or 2s (a number alone counts milliseconds)", key, quoteShort(value), least, most)
	}
	return d, nil
}

// splitReplicas splits pgwait_replicas into its replicas: separated by white
// space, or by commas outside URLs; a URL runs to the next white space.
func splitReplicas(value string) []string {
	var items []string
	for _, tok := range strings.Fields(value) {
		for tok != "" {
			if isURL(tok) {
				items = append(items, tok)
				break
			}
			item, rest, _ := strings.Cut(tok, ",")
			if item != "" {
				items = append(items, item)
			}
			tok = rest
		}
	}
	return items
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// ReplicaConfig returns the connection settings of a replica, given as in
// pgwait_replicas (see ParseConfig):
//
//   - host, host:port, [ipv6] or [ipv6]:port: a copy of primary with
//     the replica's host and port (primary's port if none), and the TLS
//     settings, TLS fallbacks (sslmode prefer and allow) and password file
//     entry that pgx.ParseConfig computes from the primary's connection
//     string (primary.ConnString()) for a direct connection to that host.
//     A Unix-socket primary thus gives TCP replicas the TLS its sslmode
//     demands. target_session_attrs does not apply to the replica.
//   - a postgres:// URL: pgx.ParseConfig's settings for it; it may not
//     hold pgwait_* settings.
//
// Its errors never repeat a password.
func ReplicaConfig(primary *pgx.ConnConfig, replica string) (*pgx.ConnConfig, error) {
	if isURL(replica) {
		return replicaURL(replica)
	}
	if primary == nil {
		return nil, errors.New("the primary's settings are nil; build them with pgx.ParseConfig")
	}
	host, port, err := splitHostPort(replica, primary.Port)
	if err != nil {
		return nil, err
	}
	s, err := parseSettings(primary.ConnString())
	if err != nil {
		return nil, fmt.Errorf("the primary's connection string (its ConnString) is %w", err)
	}
	for k := range s {
		if strings.HasPrefix(k, ownPrefix) {
			return nil, fmt.Errorf("the primary's connection string holds pgwait's setting %s: parse it with pgwait.ParseConfig, which takes pgwait's settings out", quoteShort(k))
		}
	}
	s["host"], s["port"], s["target_session_attrs"] = host, strconv.Itoa(int(port)), "any"
	fresh, err := connConfig(s, "replica "+net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		return nil, err
	}
	r := primary.Copy()
	r.Host, r.Port = fresh.Host, fresh.Port
	r.TLSConfig, r.Fallbacks = fresh.TLSConfig, fresh.Fallbacks
	r.ValidateConnect = nil
	if orig, err := pgx.ParseConfig(primary.ConnString()); err == nil && orig.Password == primary.Password {
		// The password is the connection string's, the environment's or
		// the password file's: as pgx would for the replica's host.
		r.Password = fresh.Password
	}
	return r, nil
}

// splitHostPort reads host, host:port, [ipv6] or [ipv6]:port. Its errors
// quote the text only when it cannot be a password.
func splitHostPort(replica string, defaultPort uint16) (string, uint16, error) {
	const want = "want host, host:port, [ipv6]:port or a postgres:// URL"
	switch {
	case strings.Contains(replica, "@"):
		return "", 0, errors.New("credentials (user@host) are not allowed here: give user and password in the primary's connection string, or write the replica as a postgres:// URL")
	case strings.Contains(replica, "="):
		return "", 0, errors.New("keyword=value settings are not allowed here: " + want)
	case strings.ContainsAny(replica, ` /?#'"\`+spaces):
		return "", 0, errors.New("unexpected characters: " + want)
	}
	host, port := replica, defaultPort
	if h, p, err := net.SplitHostPort(replica); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("%s: port %s is not a number from 1 to 65535", quoteShort(replica), quoteShort(p))
		}
		host, port = h, uint16(n)
	} else if strings.HasPrefix(replica, "[") && strings.HasSuffix(replica, "]") {
		host = replica[1 : len(replica)-1]
	} else if strings.Count(replica, ":") == 1 || strings.ContainsAny(replica, "[]") {
		return "", 0, fmt.Errorf("%s: %s", quoteShort(replica), want)
	}
	ip, _, _ := strings.Cut(host, "%") // an IPv6 zone: fe80::1%eth0
	if host == "" || strings.ContainsAny(host, "[]") || strings.Contains(host, ":") && net.ParseIP(ip) == nil {
		return "", 0, fmt.Errorf("%s: %s", quoteShort(replica), want)
	}
	return host, port, nil
}

// replicaURL reads a replica given as a postgres:// URL.
func replicaURL(u string) (*pgx.ConnConfig, error) {
	s, err := parseSettings(u)
	if err != nil {
		return nil, fmt.Errorf("the replica URL is %w", err)
	}
	for _, k := range s.keys() {
		if strings.HasPrefix(k, ownPrefix) {
			return nil, fmt.Errorf("the replica URL holds pgwait's setting %s: pgwait's settings go in the primary's connection string only; remove it from the replica URL", quoteShort(k))
		}
	}
	if strings.Contains(s["database"], ",") {
		return nil, errors.New("the replica URL's database name holds a comma: put a space, not a comma, between a replica URL and the next replica")
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("the replica URL: %w", err)
	}
	r, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("the replica URL: %w", safeError(s))
	}
	return r, nil
}

// Validate checks c as driver.NewConnector does: a primary, no nil
// replica, settings within their bounds (zero WaitTimeout and
// HealthInterval stand for their defaults), known policies, and nothing
// pgwait cannot run with. ParseConfig returns only configs that pass.
func (c *Config) Validate() error {
	if c == nil || c.Primary == nil {
		return errors.New("pgwait: the config has no primary; build it with pgwait.ParseConfig")
	}
	if err := checkConn("the primary", c.Primary); err != nil {
		return err
	}
	for i, r := range c.Replicas {
		if r == nil {
			return fmt.Errorf("pgwait: Config.Replicas[%d] is nil; build replicas with pgwait.ReplicaConfig or pgx.ParseConfig", i)
		}
		if err := checkConn(fmt.Sprintf("replica %s", Addr(r)), r); err != nil {
			return err
		}
	}
	if d := c.WaitTimeout; d != 0 && (d < MinWaitTimeout || d > MaxWaitTimeout) {
		return fmt.Errorf("pgwait: wait timeout %v: want %v to %v (pgwait_wait_timeout), or 0 for the default %v", d, MinWaitTimeout, MaxWaitTimeout, DefaultWaitTimeout)
	}
	if d := c.HealthInterval; d != 0 && (d < MinHealthInterval || d > MaxHealthInterval) {
		return fmt.Errorf("pgwait: health interval %v: want %v to %v (pgwait_health_interval), or 0 for the default %v", d, MinHealthInterval, MaxHealthInterval, DefaultHealthInterval)
	}
	if l := c.Level; l.kind > levelPrimary || l.kind == levelBounded && l.staleness <= 0 || l.kind != levelBounded && l.staleness != 0 {
		return fmt.Errorf("pgwait: consistency level %+v: build it with the package's levels or BoundedStaleness of a positive duration", l)
	}
	if c.WriteVisibility < 0 || c.WriteVisibility > 1<<16-1 {
		return fmt.Errorf("pgwait: write visibility %d: want a number of replicas from 0 to 65535", c.WriteVisibility)
	}
	if d := c.MaxReplicaLag; d != 0 && (d < MinReplicaTimeout || d > MaxHealthInterval) {
		return fmt.Errorf("pgwait: max replica lag %v: want %v to %v (pgwait_max_replica_lag), or 0 for no bound", d, MinReplicaTimeout, MaxHealthInterval)
	}
	if d := c.ReplicaTimeout; d != 0 && (d < MinReplicaTimeout || d > MaxReplicaTimeout) {
		return fmt.Errorf("pgwait: replica timeout %v: want %v to %v (pgwait_replica_timeout), or 0 for the default %v", d, MinReplicaTimeout, MaxReplicaTimeout, DefaultReplicaTimeout)
	}
	for _, e := range c.enums() {
		if int(e.v) >= len(e.names) {
			return fmt.Errorf("pgwait: %s is %d, which is none of %s: use the package's constants", e.key, e.v, strings.Join(e.names, ", "))
		}
	}
	return nil
}

// checkConn refuses server settings pgwait cannot run with.
func checkConn(what string, cc *pgx.ConnConfig) error {
	if m := cc.DefaultQueryExecMode; m < pgx.QueryExecModeCacheStatement || m > pgx.QueryExecModeSimpleProtocol {
		return fmt.Errorf("pgwait: %s: DefaultQueryExecMode %d is none of pgx's modes: set default_query_exec_mode in the connection string (cache_statement, cache_describe, describe_exec, exec or simple_protocol)", what, m)
	}
	for k := range cc.RuntimeParams {
		if strings.HasPrefix(k, ownPrefix) {
			return fmt.Errorf("pgwait: %s: setting %s would be sent to the server: pgwait's settings go in the primary's connection string, read by pgwait.ParseConfig", what, quoteShort(k))
		}
	}
	return nil
}

// Copy returns a deep copy of c: its own primary and replica settings (as
// pgx.ConnConfig.Copy makes them) and replica slice. The Tracer and the
// Resolver are shared.
func (c *Config) Copy() *Config {
	n := *c
	if c.Primary != nil {
		n.Primary = c.Primary.Copy()
	}
	if c.Replicas != nil {
		n.Replicas = make([]*pgx.ConnConfig, len(c.Replicas))
		for i, r := range c.Replicas {
			if r != nil {
				n.Replicas[i] = r.Copy()
			}
		}
	}
	return &n
}

// FormatDSN returns a keyword=value connection string that ParseConfig
// reads back to a config equal to c. The primary and replicas are written
// from the connection strings they were parsed from (ConnString): a replica
// that ReplicaConfig derived from the primary as host:port, any other as a
// URL. Changes made to their fields after parsing, the Tracer and the
// Resolver are not written. The string holds the passwords; print String
// instead.
func (c *Config) FormatDSN() (string, error) { return c.format(false) }

// String returns FormatDSN's connection string with every password written
// as xxxxx, for logs and messages; an invalid config gives the reason.
func (c *Config) String() string {
	s, err := c.format(true)
	if err != nil {
		return "invalid pgwait.Config: " + err.Error()
	}
	return s
}

func (c *Config) format(redact bool) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	ps, err := ownFree("the primary", c.Primary.ConnString())
	if err != nil {
		return "", err
	}
	out := ps.keywordValue(redact)
	var reps []string
	for _, r := range c.Replicas {
		cs := r.ConnString()
		if cs == c.Primary.ConnString() {
			reps = append(reps, net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))))
			continue
		}
		rs, err := ownFree("replica "+Addr(r), cs)
		if err != nil {
			return "", err
		}
		if redact || !isURL(cs) || strings.ContainsAny(cs, spaces) {
			cs = rs.url(redact)
		}
		reps = append(reps, cs)
	}
	add := func(key, value string) {
		if out != "" {
			out += " "
		}
		out += key + "=" + quoteValue(value)
	}
	if len(reps) > 0 {
		add(keyReplicas, strings.Join(reps, " "))
	}
	if d := c.WaitTimeout; d != 0 && d != DefaultWaitTimeout {
		add(keyWaitTimeout, d.String())
	}
	for _, e := range c.enums() {
		if e.v != 0 {
			add(e.key, e.names[e.v])
		}
	}
	if d := c.HealthInterval; d != 0 && d != DefaultHealthInterval {
		add(keyHealth, d.String())
	}
	if d := c.ReplicaTimeout; d != 0 && d != DefaultReplicaTimeout {
		add(keyReplicaTO, d.String())
	}
	if c.Level != ReadYourWrites {
		add(keyLevel, c.Level.String())
	}
	if c.MaxReplicaLag != 0 {
		add(keyMaxLag, c.MaxReplicaLag.String())
	}
	if c.WriteVisibility != 0 {
		add(keyVisibility, strconv.Itoa(c.WriteVisibility))
	}
	return out, nil
}

// ownFree reads a server's connection string for FormatDSN.
func ownFree(what, cs string) (settings, error) {
	s, err := parseSettings(cs)
	if err != nil {
		return nil, fmt.Errorf("pgwait: %s: its connection string (ConnString) is %w", what, err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("pgwait: %s: its connection string (ConnString): %w", what, err)
	}
	for k := range s {
		if strings.HasPrefix(k, ownPrefix) {
			return nil, fmt.Errorf("pgwait: %s: its connection string (ConnString) holds pgwait's setting %s; build it without", what, quoteShort(k))
		}
	}
	return s, nil
}

// Addr returns host:port of a server's settings, for messages and stats.
func Addr(c *pgx.ConnConfig) string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// enumSetting is one enumerated setting's DSN key, value and spellings.
type enumSetting struct {
	key   string
	v     uint8
	names []string
}

// enums lists c's enumerated settings, for Validate and FormatDSN.
func (c *Config) enums() []enumSetting {
	return []enumSetting{
		{keyOnTimeout, uint8(c.OnTimeout), timeoutNames},
		{keyScope, uint8(c.Scope), scopeNames},
		{keyWaitMethod, uint8(c.WaitMethod), waitMethodNames},
		{keyBalance, uint8(c.Balance), balanceNames},
		{keyNoReplica, uint8(c.NoReplica), noReplicaNames},
		{keyDiscovery, uint8(c.Discovery), discoveryNames},
	}
}
