package docker

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
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

func TestRunOptions(t *testing.T) {
	network := &dockertest.Network{Network: &dc.Network{ID: "net-id", Name: "pgwait-x"}}
	labels := map[string]string{labelKey: "x"}
	pr := primaryRunOptions("postgres", "19", "pgwait-primary-x", "pw", nil, network, labels)
	if pr.Repository != "postgres" || pr.Tag != "19" || pr.Name != "pgwait-primary-x" {
		t.Errorf("primary image/name: %+v", pr)
	}
	if !slices.Equal(pr.Entrypoint[:2], []string{"bash", "-c"}) || pr.Entrypoint[2] != primaryScript {
		t.Errorf("primary entrypoint %q", pr.Entrypoint)
	}
	for _, want := range []string{"POSTGRES_PASSWORD=pw", "PGWAIT_REPLICATION_USER=" + replUser, "PGWAIT_REPLICATION_PASSWORD=pw"} {
		if !slices.Contains(pr.Env, want) {
			t.Errorf("primary environment %q lacks %q", pr.Env, want)
		}
	}
	if !slices.Contains(pr.Cmd, "wal_level=replica") {
		t.Errorf("primary command %q lacks wal_level=replica", pr.Cmd)
	}
	if len(pr.Networks) != 1 || pr.Networks[0] != network || pr.Labels[labelKey] != "x" || !slices.Equal(pr.ExposedPorts, []string{"5432/tcp"}) {
		t.Errorf("primary network/labels/ports: %+v", pr)
	}

	rr := replicaRunOptions("postgres", "19", "pgwait-replica-x", "pgwait-primary-x", "p w'", nil, network, labels)
	if rr.User != "postgres" || rr.Entrypoint[2] != replicaScript || rr.Name != "pgwait-replica-x" {
		t.Errorf("replica options: %+v", rr)
	}
	if len(rr.Env) != 1 || !strings.HasPrefix(rr.Env[0], "PGWAIT_PRIMARY_CONNINFO=") {
		t.Fatalf("replica environment %q", rr.Env)
	}
	// The conninfo must be what libpq (here pgx, which parses it the same way)
	// reads: the primary by container name, the replication role, the
	// password intact.
	cfg, err := pgx.ParseConfig(strings.TrimPrefix(rr.Env[0], "PGWAIT_PRIMARY_CONNINFO="))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "pgwait-primary-x" || cfg.Port != 5432 || cfg.User != replUser || cfg.Password != "p w'" {
		t.Errorf("replication conninfo: host %s port %d user %s password %q", cfg.Host, cfg.Port, cfg.User, cfg.Password)
	}
}

// The scripts must at least be valid bash; and the replica's must clone with
// -R and -X stream before it runs postgres.
func TestScripts(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	for name, script := range map[string]string{"primary": primaryScript, "replica": replicaScript} {
		out, err := exec.Command("bash", "-n", "-c", script).CombinedOutput()
		if err != nil {
			t.Errorf("%s script: bash -n: %v: %s", name, err, out)
		}
	}
	// The initialization script the primary's writes must be valid too.
	init := primaryScript[strings.Index(primaryScript, "<<'PGWAIT_INIT'\n")+len("<<'PGWAIT_INIT'\n") : strings.Index(primaryScript, "PGWAIT_INIT\nexec")]
	if out, err := exec.Command("bash", "-n", "-c", init).CombinedOutput(); err != nil {
		t.Errorf("initialization script: bash -n: %v: %s", err, out)
	}
	for _, want := range []string{"WITH REPLICATION LOGIN", "host replication $PGWAIT_REPLICATION_USER all scram-sha-256", "exec docker-entrypoint.sh postgres \"$@\""} {
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
		password:    "secret",
		primaryAddr: "127.0.0.1:32768",
		replicaAddr: "127.0.0.1:32769",
		params:      []dsn.Param{{Key: "pgwait_wait_timeout", Value: "250ms"}},
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
	v6 := &Pair{password: "x", primaryAddr: "[::1]:1", replicaAddr: "[::1]:2"}
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
