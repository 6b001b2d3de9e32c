package docker

import (
	"sort"

	dc "github.com/ory/dockertest/v3/docker"

	"github.com/pgwait/pgwait/pgwaittest/internal/dsn"
)

// serverArgs returns postgres's -c arguments: the replication essentials and
// test-friendly settings, then the caller's, sorted by name. The servers
// listen on TCP only, so that the image's socket directory does not matter.
func serverArgs(extra map[string]string) []string {
	base := [][2]string{
		{"wal_level", "replica"},
		{"max_wal_senders", "10"},
		{"wal_keep_size", "256MB"},
		{"hot_standby", "on"},
		{"wal_receiver_status_interval", "1s"},
		{"wal_writer_delay", "10ms"},
		{"wal_retrieve_retry_interval", "100ms"}, // a restarted primary is found again at once
		{"jit", "off"},
		{"fsync", "off"},
		{"listen_addresses", "*"},
		{"unix_socket_directories", ""},
	}
	var args []string
	for _, kv := range base {
		if _, ok := extra[kv[0]]; !ok {
			args = append(args, "-c", kv[0]+"="+kv[1])
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+extra[k])
	}
	return args
}

// dataDir is the scripts' common start: the data directory is in the
// postgres user's home, or in /tmp if that is not writable. (Only sh
// built-ins: the image needs no other tools.)
const dataDir = `set -eu
if [ -z "${HOME:-}" ] || [ ! -w "$HOME" ]; then HOME=/tmp; fi
PGDATA=$HOME/pgwait
export PGDATA
`

// primaryScript is the primary container's command (sh -c, as postgres): on
// its first start, initdb with the superuser's password and pg_hba.conf
// lines for password access and replication from anywhere; then postgres,
// with the -c arguments that follow the script as "$@".
const primaryScript = dataDir + `if [ ! -s "$PGDATA/PG_VERSION" ]; then
	printf '%s\n' "$PGWAIT_PASSWORD" |
		initdb -D "$PGDATA" -U postgres --pwfile=/dev/stdin -A scram-sha-256 -E UTF8 --no-locale --no-sync
	printf 'host all all all scram-sha-256\nhost replication all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" "$@"
`

// replicaScript is the replica container's command (sh -c, as postgres): on
// its first start, pg_basebackup -R -X stream from the primary (which writes
// primary_conninfo and standby.signal); then postgres, a hot standby.
const replicaScript = dataDir + `if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pg_basebackup -d "$PGWAIT_PRIMARY_CONNINFO" -D "$PGDATA" -R -X stream -c fast --no-manifest --no-sync
fi
exec postgres -D "$PGDATA" "$@"
`

// containerOptions returns how to create role's container: the image's own
// entrypoint is replaced by the script, run as postgres, with SIGINT (fast
// shutdown) to stop it, port 5432 published at hostIP:hostPort (empty: any),
// on the pair's network under the container's name.
func (p *Pair) containerOptions(r Role, image, hostIP, hostPort string) dc.CreateContainerOptions {
	script, env := primaryScript, []string{"PGWAIT_PASSWORD=" + p.password}
	if r == Replica {
		script = replicaScript
		env = []string{"PGWAIT_PRIMARY_CONNINFO=" + replicationConninfo(p.names[Primary], p.password, p.names[Replica])}
	}
	name := p.names[r]
	return dc.CreateContainerOptions{
		Name: name,
		Config: &dc.Config{
			Hostname:     name,
			Image:        image,
			User:         "postgres",
			Env:          env,
			Entrypoint:   []string{"sh", "-c", script, "pgwait-" + r.String()},
			Cmd:          serverArgs(p.cfg.settings),
			ExposedPorts: map[dc.Port]struct{}{port: {}},
			Labels:       p.labels(),
			StopSignal:   "SIGINT",
		},
		HostConfig: &dc.HostConfig{
			PortBindings:  map[dc.Port][]dc.PortBinding{port: {{HostIP: hostIP, HostPort: hostPort}}},
			RestartPolicy: dc.RestartPolicy{Name: "no"},
		},
		NetworkingConfig: &dc.NetworkingConfig{EndpointsConfig: map[string]*dc.EndpointConfig{
			p.network.Name: {Aliases: []string{name}},
		}},
	}
}

// replicationConninfo is how the replica reaches the primary on the Docker
// network (by container name); pg_basebackup -R copies it, password
// included, into the replica's primary_conninfo.
func replicationConninfo(primaryName, password, appName string) string {
	return dsn.Build("", "",
		dsn.Param{Key: "host", Value: primaryName},
		dsn.Param{Key: "port", Value: pgPort},
		dsn.Param{Key: "user", Value: replUser},
		dsn.Param{Key: "password", Value: password},
		dsn.Param{Key: "dbname", Value: database},
		dsn.Param{Key: "application_name", Value: appName},
		dsn.Param{Key: "connect_timeout", Value: "5"},
	)
}
