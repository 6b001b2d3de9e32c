package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server processes: who runs them, how they are started so that they die with
// the test binary, and how they are stopped.

// serverUser is the OS account that runs the server binaries when the tests
// run as root (PostgreSQL refuses to run as root).
var serverUser = "postgres"

var accountOnce = sync.OnceValues(serverAccount)

// serverAccount returns the credentials to run server binaries with: nil when
// not root, else those of the postgres account, created if missing.
func serverAccount() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return nil, fmt.Errorf("pgtest: looking up OS user %s: %w", serverUser, err)
		}
		out, addErr := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", serverUser).CombinedOutput()
		// Another test binary may have created it meanwhile: look again either way.
		if u, err = user.Lookup(serverUser); err != nil {
			return nil, fmt.Errorf("pgtest: running as root, PostgreSQL needs an OS user %s, and creating it failed: %v: %s",
				serverUser, addErr, strings.TrimSpace(string(out)))
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: OS user %s has uid %q: %w", serverUser, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: OS user %s has gid %q: %w", serverUser, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chown gives path to the server account, if there is one.
func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}

// The kernel sends a child's parent-death signal when the thread that forked
// it exits, not the process (go.dev/issue/27505). Every child is therefore
// forked by one goroutine locked to its thread for the life of the process.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnCh {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnCh <- r
	return <-r.done
}

// serverCmd prepares a server binary of binDir to run as the server account,
// in its own process group (a ^C to the test's terminal does not reach it)
// and with deathSig sent to it should the test binary die.
func serverCmd(ctx context.Context, cred *syscall.Credential, deathSig syscall.Signal, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, bin, args...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig, Credential: cred}
	cmd.Env = serverEnv()
	cmd.Dir = "/"
	return cmd
}

// serverEnv is the test binary's environment without the libpq variables
// (PGHOST, PGPORT, PGDATA...) that would change what the tools do.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runTool runs a short-lived server binary (initdb, pg_basebackup) to
// completion, bounded by ctx; its error carries the tool's output.
func runTool(ctx context.Context, cred *syscall.Credential, bin string, args ...string) error {
	var out bytes.Buffer
	cmd := serverCmd(ctx, cred, syscall.SIGKILL, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := startCmd(cmd); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(out.Bytes(), 30))
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of b, at most 8 KiB of them.
func tail(b []byte, lines int) string {
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	b = bytes.TrimRight(b, "\n")
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n == lines {
				b = b[i+1:]
				break
			}
		}
	}
	return string(b)
}

// fileTail returns the last lines of the file at path from byte offset on.
func fileTail(path string, offset int64, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > 8<<10 {
		offset = fi.Size() - 8<<10
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(log: %v)", err)
	}
	b, _ := io.ReadAll(f)
	if len(b) == 0 {
		return "(log is empty)"
	}
	return tail(b, lines)
}

// procState returns the state letter of process pid (R, S, Z...) and its
// parent's pid, or ok false when there is no such process.
func procState(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	st, _, ok := procState(pid)
	return ok && st != 'Z' && st != 'X'
}

// inDir returns the pids of the live processes whose working directory is
// dir: a server's processes all work in its data directory, so this finds
// them all, even the children of a postmaster killed a moment ago.
func inDir(dir string) []int {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == dir && alive(p) {
			pids = append(pids, p)
		}
	}
	return pids
}

// waitDirFree waits until no process works in dir, bounded by ctx.
func waitDirFree(ctx context.Context, dir string) error {
	for {
		pids := inDir(dir)
		if len(pids) == 0 {
			return nil
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("processes %v still running in %s: %w", pids, dir, err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// children returns the pids of the live child processes of pid.
func children(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ppid, ok := procState(p); ok && ppid == pid && st != 'Z' && st != 'X' {
			kids = append(kids, p)
		}
	}
	return kids
}

// waitGone waits until none of pids is alive, polling, bounded by ctx.
func waitGone(ctx context.Context, pids []int) error {
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still running: %w", left, context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}
