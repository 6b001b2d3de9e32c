package pgwait

import "context"

// Discovery says whether replicas given by host name stand for every
// address the name resolves to.
type Discovery uint8

const (
	// DiscoveryOff (the default): a replica is one replica, whatever its
	// host name resolves to; pgx connects to the first address that
	// answers, as it does on its own.
	DiscoveryOff Discovery = iota
	// DiscoveryDNS: a replica given by host name (in pgwait_replicas or to
	// AddReplica, as host or host:port or a URL with one host) stands for
	// every address the name resolves to, each a replica of its own, and
	// the name is resolved again on every health interval: a replica fleet
	// behind one DNS name (a Kubernetes headless service, a Route 53
	// multivalue record) is followed without restarts. IP addresses and
	// Unix socket directories are never resolved.
	DiscoveryDNS
)

var discoveryNames = []string{"off", "dns"}

// String returns the DSN spelling: "off" or "dns".
func (d Discovery) String() string { return name(discoveryNames, d) }

// Resolver finds the addresses of a host name, for DiscoveryDNS. A
// *net.Resolver is one; nil in Config.Resolver means net.DefaultResolver.
// As with pgconn.LookupFunc, an answer may be an address (the replica's
// configured port applies) or address:port (a resolver that reads SRV
// records or a service registry gives each replica its port).
type Resolver interface {
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

// ResolverFunc is a function that is a Resolver, as http.HandlerFunc is a
// handler: a service registry's client, or a fixed answer in tests.
type ResolverFunc func(ctx context.Context, host string) (addrs []string, err error)

// LookupHost calls f.
func (f ResolverFunc) LookupHost(ctx context.Context, host string) ([]string, error) {
	return f(ctx, host)
}
