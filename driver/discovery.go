package driver

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/pgwait/pgwait"
)

// DNS discovery (pgwait_replica_discovery=dns): a replica given by host name
// is a source, and each address its name resolves to is a replica of the
// set, added and removed as the answer changes. Each replica connects to its
// own address through a lookup pinned to it, with the settings of the name
// otherwise untouched: TLS still checks the certificate against the host
// name (sslmode=verify-full), and the password file entry is the name's.

// source is a replica given by host name under DiscoveryDNS.
type source struct {
	name    string          // host:port as configured: ReplicaStatus.Name
	cfg     *pgx.ConnConfig // the settings each replica found under it starts from
	removed atomic.Bool
	// reps are the replicas found under it, by address (host:port); under
	// the connector's repMu.
	reps map[string]*replica
}

func newSource(rc *pgx.ConnConfig) *source {
	return &source{name: pgwait.Addr(rc), cfg: rc, reps: map[string]*replica{}}
}

// discoverable reports whether rc's host is a name DNS discovery resolves:
// one host (TLS fallbacks to the same host aside), neither an IP address nor
// a Unix socket directory.
func discoverable(rc *pgx.ConnConfig) bool {
	ip, _, _ := strings.Cut(rc.Host, "%") // an IPv6 zone: fe80::1%eth0
	if rc.Host == "" || strings.HasPrefix(rc.Host, "/") || net.ParseIP(ip) != nil {
		return false
	}
	for _, fb := range rc.Fallbacks {
		if fb.Host != rc.Host || fb.Port != rc.Port {
			return false
		}
	}
	return true
}

// addrsOf turns a resolver's answers into replica addresses (host:port,
// sorted): an address takes port, address:port keeps its own; blanks and
// repeats are dropped.
func addrsOf(answers []string, port uint16) []string {
	var out []string
	for _, a := range answers {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, strconv.Itoa(int(port)))
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// diff returns the addresses of want not in have, and those of have not in
// want; both lists are sorted.
func diff(have, want []string) (added, gone []string) {
	for _, a := range want {
		if _, ok := slices.BinarySearch(have, a); !ok {
			added = append(added, a)
		}
	}
	for _, a := range have {
		if _, ok := slices.BinarySearch(want, a); !ok {
			gone = append(gone, a)
		}
	}
	return added, gone
}

// pinned returns cfg connecting to addr (host:port) only: its host name
// stays, for TLS and the password file, and pgconn's lookup of it answers
// addr.
func pinned(cfg *pgx.ConnConfig, addr string) *pgx.ConnConfig {
	rc := cfg.Copy()
	rc.LookupFunc = func(context.Context, string) ([]string, error) { return []string{addr}, nil }
	return rc
}

// resolver is the Config's Resolver, or the system's.
func (c *Connector) resolver() pgwait.Resolver {
	if c.cfg.Resolver != nil {
		return c.cfg.Resolver
	}
	return net.DefaultResolver
}

// discover resolves s's host and makes the set follow the answer: a replica
// for each new address (it enters the rotation at its first good probe, as
// one AddReplica adds), and each address gone drained as RemoveReplica
// drains. An address already in the set (given as an address, or found
// under another name) is not added twice while it is there. A failed
// lookup changes nothing (replicas at addresses that went
// away fail their probes and leave the rotation meanwhile): its error
// becomes the last error of s's replicas.
func (c *Connector) discover(ctx context.Context, s *source) {
	answers, err := c.resolver().LookupHost(ctx, s.cfg.Host)
	c.repMu.Lock()
	defer c.repMu.Unlock()
	if s.removed.Load() || ctx.Err() != nil && err != nil {
		return
	}
	if err != nil {
		err = fmt.Errorf("pgwait: resolving replica %s (pgwait_replica_discovery=dns) failed; its replicas stay as they were: %w", s.name, err)
		for _, r := range s.reps {
			r.status.failed(err)
		}
		return
	}
	added, gone := diff(slices.Sorted(maps.Keys(s.reps)), addrsOf(answers, s.cfg.Port))
	for _, a := range gone {
		c.dropLocked(s.reps[a])
		delete(s.reps, a)
	}
	for _, a := range added {
		if !c.inSetLocked(a) {
			s.reps[a] = c.addLocked(pinned(s.cfg, a), a, s.name)
		}
	}
}

// inSetLocked reports whether a replica at addr is in the set; under repMu.
func (c *Connector) inSetLocked(addr string) bool {
	for _, r := range c.replicaList() {
		if r.addr == addr && !r.removed.Load() {
			return true
		}
	}
	return false
}

// discoverLoop resolves s at once, then on every health interval, until s
// is removed or the connector closes.
func (h *healthChecker) discoverLoop(s *source) {
	defer h.wg.Done()
	resolve := func() bool {
		if s.removed.Load() {
			return false
		}
		ctx, cancel := context.WithTimeout(h.ctx, h.probeTimeout())
		defer cancel()
		h.c.discover(ctx, s)
		return true
	}
	if resolve() {
		h.every(resolve)
	}
}

// addSource starts s's discovery loop (under the connector's repMu).
func (h *healthChecker) addSource(s *source) {
	if h.ctx.Err() != nil {
		return
	}
	h.wg.Add(1)
	go h.discoverLoop(s)
}
