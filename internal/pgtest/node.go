package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// node is one server of a cluster: a data directory, a port and, while it
// runs, a postmaster process. Nodes keep their name, directory and port for
// life; their role (primary or replica) is the Cluster's bookkeeping.
type node struct {
	name    string // node0, node1...; also the server's cluster_name, pgtest-node0
	dir     string // holds data/ and postgres.log
	data    string
	logPath string
	port    int
	stale   bool // a former primary that a promotion left behind: rebuild it
	// tlsCert and tlsKey, when set, are the files of the server's TLS
	// certificate and key (Options.ServerTLS): it runs with ssl=on.
	tlsCert, tlsKey string

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been reaped
	logOff int64         // size of the log when cmd started
}

func (n *node) dsn() string { return dsn(n.port) }

func dsn(port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)
}

func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *node) pid() int {
	if !n.running() {
		return 0
	}
	return n.cmd.Process.Pid
}

// logTail is the end of what the server logged since it was last started.
func (n *node) logTail() string {
	return fileTail(n.logPath, n.logOff, 30)
}

// errPortInUse: the server could not bind its port; start it on another one.
var errPortInUse = errors.New("port in use")

// stopTimeout bounds a fast shutdown before it is escalated.
const stopTimeout = 30 * time.Second

// launch starts the postmaster of n as a child process, logging to n.logPath.
func (c *Cluster) launch(n *node) error {
	f, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own copy
	if fi, err := f.Stat(); err == nil {
		n.logOff = fi.Size()
	}
	args := []string{"-D", n.data, "-p", strconv.Itoa(n.port), "-c", "cluster_name=pgtest-" + n.name}
	if n.tlsCert != "" {
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file="+n.tlsCert, "-c", "ssl_key_file="+n.tlsKey)
	}
	cmd := serverCmd(nil, c.cred, syscall.SIGQUIT, filepath.Join(c.binDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := startCmd(cmd); err != nil {
		return fmt.Errorf("pgtest: starting %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return nil
}

// waitReady waits until n accepts connections and, for a standby, until it
// streams from its primary.
func (c *Cluster) waitReady(ctx context.Context, n *node, standby bool) error {
	fail := func(what string, err error) error {
		if err != nil {
			what += ": " + err.Error()
		}
		return fmt.Errorf("pgtest: %s (port %d) %s; its log:\n%s", n.name, n.port, what, n.logTail())
	}
	var conn *pgx.Conn
	var lastErr error
	for conn == nil {
		if !n.running() {
			if strings.Contains(n.logTail(), "Address already in use") {
				return errPortInUse
			}
			return fail("exited during start-up", nil)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, lastErr = pgx.Connect(cctx, n.dsn())
		cancel()
		if conn == nil {
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return fail("did not accept connections", fmt.Errorf("%w; last: %v", err, lastErr))
			}
		}
	}
	defer conn.Close(context.Background())
	if !standby {
		return nil
	}
	for {
		var status string
		err := conn.QueryRow(ctx, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')").Scan(&status)
		if err == nil && status == "streaming" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("wal receiver status %q", status)
		}
		if !n.running() {
			return fail("exited", nil)
		}
		if e := sleepCtx(ctx, 10*time.Millisecond); e != nil {
			return fail("did not start streaming", fmt.Errorf("%w; last: %v", e, err))
		}
	}
}

// startFresh starts a node that has no port yet on a free one, retrying
// with another port when something else took it first.
func (c *Cluster) startFresh(ctx context.Context, n *node, standby bool) error {
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("pgtest: finding a free port: %w", err)
		}
		n.port = port
		if err := c.launch(n); err != nil {
			return err
		}
		err = c.waitReady(ctx, n, standby)
		if !errors.Is(err, errPortInUse) {
			if err != nil {
				c.stopNode(context.Background(), n)
			}
			return err
		}
		if attempt == 4 {
			return fmt.Errorf("pgtest: %s: five free ports were taken before the server could bind them", n.name)
		}
	}
}

// stopNode shuts n down fast (SIGINT). Should that take longer than ctx
// allows or stopTimeout, it escalates to an immediate shutdown (SIGQUIT), then
// to SIGKILL, and reports it.
func (c *Cluster) stopNode(ctx context.Context, n *node) error {
	if !n.running() {
		return nil
	}
	p := n.cmd.Process
	_ = p.Signal(syscall.SIGINT)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	var why error
	select {
	case <-n.exited:
		return nil
	case <-ctx.Done():
		why = context.Cause(ctx)
	case <-timer.C:
		why = fmt.Errorf("still running %v after SIGINT", stopTimeout)
	}
	kids := children(p.Pid)
	_ = p.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = p.Signal(syscall.SIGKILL)
		<-n.exited
	}
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitServerGone(wctx, n, kids); err != nil {
		return fmt.Errorf("pgtest: stopping %s: %v, then %w", n.name, why, err)
	}
	cleanAfterCrash(n)
	return fmt.Errorf("pgtest: stopping %s: fast shutdown did not finish (%v); killed it. Its log:\n%s", n.name, why, n.logTail())
}

// killNode SIGKILLs n's postmaster, as a crash would, and waits until its
// child processes are gone too.
func (c *Cluster) killNode(ctx context.Context, n *node) error {
	if !n.running() {
		return nil
	}
	kids := children(n.cmd.Process.Pid)
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.exited:
	case <-ctx.Done():
		return fmt.Errorf("pgtest: killing %s: %w", n.name, context.Cause(ctx))
	}
	// The children notice the postmaster's death and exit on their own.
	if err := waitServerGone(ctx, n, kids); err != nil {
		return fmt.Errorf("pgtest: killing %s: %w", n.name, err)
	}
	cleanAfterCrash(n)
	return nil
}

// waitServerGone waits until the processes of n's last postmaster have all
// exited: kids, its children when it was signalled, and whatever still works
// in its data directory (children forked after that).
func waitServerGone(ctx context.Context, n *node, kids []int) error {
	if err := waitGone(ctx, kids); err != nil {
		return err
	}
	return waitDirFree(ctx, n.data)
}

// cleanAfterCrash removes what a killed postmaster leaves behind once all its
// processes are gone: its System V shared memory segment (which would
// otherwise outlive the data directory) and its lock file. A later start
// then recovers from the crash as usual.
func cleanAfterCrash(n *node) {
	pidFile := filepath.Join(n.data, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) >= 7 { // line 7: shared memory key and id
		if f := strings.Fields(lines[6]); len(f) == 2 {
			if id, err := strconv.Atoi(f[1]); err == nil && id >= 0 {
				const ipcRmid = 0
				_, _, _ = syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRmid, 0)
			}
		}
	}
	_ = os.Remove(pidFile)
}
