package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrNoBouncer is returned by StartBouncer where PgBouncer is not installed
// (Debian's package pgbouncer; .ci/run installs it).
var ErrNoBouncer = errors.New("pgtest: PgBouncer is not installed (apt-get install pgbouncer)")

// Bouncer is a PgBouncer in front of one server of a cluster.
type Bouncer struct {
	cmd  *exec.Cmd
	dir  string
	port int
}

// StartBouncer starts a PgBouncer on a free loopback port in front of the
// server listening on target (host:port), in the pool mode given
// ("session" or "transaction"), with extra lines for its [pgbouncer]
// section (such as "max_prepared_statements = 100"). It trusts every
// connection and runs as the cluster's server account. Close stops it.
func (c *Cluster) StartBouncer(ctx context.Context, target, mode string, extra ...string) (*Bouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err != nil {
			return nil, ErrNoBouncer
		}
		bin = "/usr/sbin/pgbouncer"
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(c.dir, "bouncer")
	if err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = %s
max_client_conn = 500
default_pool_size = 40
server_reset_query = DISCARD ALL
logfile = %s
pidfile = %s
`, host, port, listen, filepath.Join(dir, "users.txt"), mode, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	for _, line := range extra {
		ini += line + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte(`"postgres" ""`+"\n"), 0o644); err != nil {
		return nil, err
	}
	if c.cred != nil {
		if err := chown(dir, c.cred); err != nil {
			return nil, err
		}
		for _, f := range []string{"pgbouncer.ini", "users.txt"} {
			if err := chown(filepath.Join(dir, f), c.cred); err != nil {
				return nil, err
			}
		}
	}
	cmd := serverCmd(nil, c.cred, syscall.SIGKILL, bin, filepath.Join(dir, "pgbouncer.ini"))
	if err := startCmd(cmd); err != nil {
		return nil, fmt.Errorf("pgtest: starting PgBouncer: %w", err)
	}
	b := &Bouncer{cmd: cmd, dir: dir, port: listen}
	go cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			conn.Close()
			return b, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			b.Close()
			return nil, fmt.Errorf("pgtest: PgBouncer did not start: %v; its log:\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr returns the bouncer's host:port.
func (b *Bouncer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// Close stops the bouncer.
func (b *Bouncer) Close() error {
	if b.cmd.Process != nil {
		b.cmd.Process.Kill()
	}
	return nil
}
