package docker

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	dc "github.com/ory/dockertest/v3/docker"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaittest/internal/dsn"
)

func TestImageRef(t *testing.T) {
	t.Setenv(ImageEnv, "")
	if got := configure(nil).imageRef(); got != DefaultImage {
		t.Errorf("default image %q, want %q", got, DefaultImage)
	}
	t.Setenv(ImageEnv, " postgres:19rc1 ")
	if got := configure(nil).imageRef(); got != "postgres:19rc1" {
		t.Errorf("with %s set: %q", ImageEnv, got)
	}
	if got := configure([]Option{WithImage("mirror.example/postgres:19")}).imageRef(); got != "mirror.example/postgres:19" {
		t.Errorf("WithImage over the environment: %q", got)
	}
}

func TestSplitImage(t *testing.T) {
	for _, tc := range []struct{ ref, repo, tag string }{
		{"postgres:19", "postgres", "19"},
		{"postgres:19rc1", "postgres", "19rc1"},
		{"postgres", "postgres", "latest"},
		{"localhost:5000/postgres", "localhost:5000/postgres", "latest"},
		{"localhost:5000/team/postgres:19-bookworm", "localhost:5000/team/postgres", "19-bookworm"},
		{"postgres@sha256:abcd", "postgres@sha256:abcd", ""},
	} {
		repo, tag := splitImage(tc.ref)
		if repo != tc.repo || tag != tc.tag {
			t.Errorf("splitImage(%q) = %q, %q; want %q, %q", tc.ref, repo, tag, tc.repo, tc.tag)
		}
	}
}

func TestDockerHost(t *testing.T) {
	for _, tc := range []struct{ endpoint, bound, want string }{
		{"unix:///var/run/docker.sock", "0.0.0.0", "127.0.0.1"},
		{"unix:///var/run/docker.sock", "", "127.0.0.1"},
		{"unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1"},
		{"tcp://10.1.2.3:2376", "0.0.0.0", "10.1.2.3"},
		{"http://dockerhost:2375", "::", "dockerhost"},
		{"tcp://10.1.2.3:2376", "192.0.2.7", "192.0.2.7"},
	} {
		if got := dockerHost(tc.endpoint, tc.bound); got != tc.want {
			t.Errorf("dockerHost(%q, %q) = %q, want %q", tc.endpoint, tc.bound, got, tc.want)
		}
	}
}

func TestServerArgs(t *testing.T) {
	args := serverArgs(map[string]string{"max_connections": "50", "fsync": "on"})
	joined := strings.Join(args, " ")
	for _, want := range []string{"-c wal_level=replica", "-c max_wal_senders=10", "-c hot_standby=on", "-c max_connections=50", "-c fsync=on"} {
		if !strings.Contains(joined, want) {
			t.Errorf("server arguments %q lack %q", joined, want)
		}
	}
	if strings.Contains(joined, "fsync=off") {
		t.Errorf("WithServerSetting did not replace the default fsync: %q", joined)
	}
	for i := 0; i < len(args); i += 2 {
		if args[i] != "-c" || !strings.Contains(args[i+1], "=") {
			t.Fatalf("argument pair %d: %q %q, want -c name=value", i/2, args[i], args[i+1])
		}
	}
}

func TestContainerOptions(t *testing.T) {
	p := &Pair{
		id: "x", password: "p w'", network: &dc.Network{ID: "net-id", Name: "pgwait-x"},
		names: [2]string{"pgwait-primary-x", "pgwait-replica-x"},
		cfg:   config{settings: map[string]string{"max_connections": "50"}},
	}
	pr := p.containerOptions(Primary, "pgwait-local/postgres:19", "127.0.0.1", "40001")
	if pr.Name != "pgwait-primary-x" || pr.Config.Image != "pgwait-local/postgres:19" || pr.Config.User != "postgres" || pr.Config.StopSignal != "SIGINT" {
		t.Errorf("primary: %+v", pr.Config)
	}
	if !slices.Equal(pr.Config.Entrypoint, []string{"sh", "-c", primaryScript, "pgwait-primary"}) {
		t.Errorf("primary entrypoint %q", pr.Config.Entrypoint)
	}
	if !slices.Equal(pr.Config.Env, []string{"PGWAIT_PASSWORD=p w'"}) {
		t.Errorf("primary environment %q", pr.Config.Env)
	}
	if !slices.Contains(pr.Config.Cmd, "wal_level=replica") || !slices.Contains(pr.Config.Cmd, "max_connections=50") {
		t.Errorf("primary command %q", pr.Config.Cmd)
	}
	if pr.Config.Labels[labelID] != "x" || pr.Config.Labels[labelPID] == "" || pr.Config.Labels[labelHost] == "" {
		t.Errorf("primary labels %v", pr.Config.Labels)
	}
	if b := pr.HostConfig.PortBindings[port]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "40001" {
		t.Errorf("primary port bindings %v", pr.HostConfig.PortBindings)
	}
	if pr.HostConfig.RestartPolicy.Name != "no" {
		t.Errorf("primary restart policy %+v", pr.HostConfig.RestartPolicy)
	}
	if ep := pr.NetworkingConfig.EndpointsConfig["pgwait-x"]; ep == nil || !slices.Equal(ep.Aliases, []string{"pgwait-primary-x"}) {
		t.Errorf("primary network %+v", pr.NetworkingConfig.EndpointsConfig)
	}

	rr := p.containerOptions(Replica, "pgwait-local/postgres:19", "", "")
	if rr.Name != "pgwait-replica-x" || rr.Config.User != "postgres" || rr.Config.Entrypoint[2] != replicaScript {
		t.Errorf("replica: %+v", rr.Config)
	}
	if len(rr.Config.Env) != 1 || !strings.HasPrefix(rr.Config.Env[0], "PGWAIT_PRIMARY_CONNINFO=") {
		t.Fatalf("replica environment %q", rr.Config.Env)
	}
	// The conninfo must be what libpq (here pgx, which parses it the same way)
	// reads: the primary by container name, the replication role, the
	// password intact.
	cfg, err := pgx.ParseConfig(strings.TrimPrefix(rr.Config.Env[0], "PGWAIT_PRIMARY_CONNINFO="))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "pgwait-primary-x" || cfg.Port != 5432 || cfg.User != replUser || cfg.Password != "p w'" {
		t.Errorf("replication conninfo: host %s port %d user %s password %q", cfg.Host, cfg.Port, cfg.User, cfg.Password)
	}
}

func TestPublishAt(t *testing.T) {
	ip, p, err := publishAt("unix:///var/run/docker.sock")
	if err != nil || ip != "127.0.0.1" || p == "" || p == "0" {
		t.Errorf("local engine: %q %q %v", ip, p, err)
	}
	if ip, p, err := publishAt("tcp://10.1.2.3:2376"); err != nil || ip != "" || p != "" {
		t.Errorf("remote engine: %q %q %v, want the engine to choose", ip, p, err)
	}
}

// The scripts must be valid POSIX sh (dash where there is one), use nothing
// but sh built-ins and PostgreSQL's programs, and the replica's must clone
// with -R and -X stream before it runs postgres.
func TestScripts(t *testing.T) {
	shell := "sh"
	if _, err := exec.LookPath("dash"); err == nil {
		shell = "dash"
	} else if _, err := exec.LookPath(shell); err != nil {
		t.Skip("no sh")
	}
	for name, script := range map[string]string{"primary": primaryScript, "replica": replicaScript} {
		out, err := exec.Command(shell, "-n", "-c", script).CombinedOutput()
		if err != nil {
			t.Errorf("%s script: %s -n: %v: %s", name, shell, err, out)
		}
		for _, tool := range []string{"mkdir", "chmod", "cat", "sleep", "psql", "seq", "bash", "docker-entrypoint.sh", "gosu"} {
			if strings.Contains(script, tool+" ") {
				t.Errorf("%s script runs %s, which an image need not have", name, tool)
			}
		}
	}
	for _, want := range []string{"initdb -D \"$PGDATA\" -U postgres --pwfile=/dev/stdin", "host replication all all scram-sha-256", "exec postgres -D \"$PGDATA\" \"$@\""} {
		if !strings.Contains(primaryScript, want) {
			t.Errorf("primary script lacks %q", want)
		}
	}
	bb := strings.Index(replicaScript, "pg_basebackup ")
	if bb < 0 || !strings.Contains(replicaScript[bb:], " -R -X stream ") || strings.Index(replicaScript, "exec postgres") < bb {
		t.Errorf("replica script does not pg_basebackup -R -X stream, then exec postgres:\n%s", replicaScript)
	}
}

func TestDSN(t *testing.T) {
	p := &Pair{
		password: "secret",
		addrs:    [2]string{"127.0.0.1:32768", "127.0.0.1:32769"},
		cfg:      config{params: []dsn.Param{{Key: "pgwait_wait_timeout", Value: "250ms"}}},
	}
	cfg, err := pgwait.ParseConfig(p.DSN())
	if err != nil {
		t.Fatalf("ParseConfig(%q): %v", p.DSN(), err)
	}
	if pgwait.Addr(cfg.Primary) != "127.0.0.1:32768" || cfg.Primary.User != "postgres" || cfg.Primary.Password != "secret" || cfg.Primary.Database != "postgres" {
		t.Errorf("primary %s user %s password %q database %s", pgwait.Addr(cfg.Primary), cfg.Primary.User, cfg.Primary.Password, cfg.Primary.Database)
	}
	if len(cfg.Replicas) != 1 || pgwait.Addr(cfg.Replicas[0]) != "127.0.0.1:32769" || cfg.Replicas[0].Password != "secret" {
		t.Errorf("replicas %v", cfg.Replicas)
	}
	if cfg.WaitTimeout.String() != "250ms" {
		t.Errorf("wait timeout %v", cfg.WaitTimeout)
	}
	replica, err := pgx.ParseConfig(p.ReplicaDSN())
	if err != nil || pgwait.Addr(replica) != "127.0.0.1:32769" {
		t.Errorf("ReplicaDSN %q: %v", p.ReplicaDSN(), err)
	}
	v6 := &Pair{password: "x", addrs: [2]string{"[::1]:1", "[::1]:2"}}
	if cfg, err := pgwait.ParseConfig(v6.DSN()); err != nil || pgwait.Addr(cfg.Primary) != "[::1]:1" || pgwait.Addr(cfg.Replicas[0]) != "[::1]:2" {
		t.Errorf("IPv6: %q: %v", v6.DSN(), err)
	}
}

func TestStartWithoutEngine(t *testing.T) {
	_, err := Start(t.Context(), WithEndpoint("unix:///nonexistent/docker.sock"))
	if !errors.Is(err, ErrNoDocker) {
		t.Fatalf("Start on a missing socket: %v, want ErrNoDocker", err)
	}
}
