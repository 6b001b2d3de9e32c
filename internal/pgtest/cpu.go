package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU accounting of the servers, for benchmarks: how much CPU time each
// server's processes (its postmaster and every process descended from it)
// have used so far.

// clockTick is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go runs on).
const clockTick = 10 * time.Millisecond

// ServerCPU is the CPU time (user plus system) a server's processes used,
// in all and by kind of process.
type ServerCPU struct {
	Total time.Duration
	// Backends are client backends (applications' connections); WALSenders
	// stream WAL to replicas; Replay is a standby's startup process (which
	// replays WAL) and WAL receiver; Exited are children the postmaster has
	// reaped, whatever their kind. The rest of Total is the postmaster and
	// the other auxiliary processes (checkpointer, WAL writer, autovacuum...).
	Backends, WALSenders, Replay, Exited time.Duration
}

// Sub returns what s used since an earlier reading of the same server.
func (s ServerCPU) Sub(earlier ServerCPU) ServerCPU {
	return ServerCPU{Total: s.Total - earlier.Total, Backends: s.Backends - earlier.Backends,
		WALSenders: s.WALSenders - earlier.WALSenders, Replay: s.Replay - earlier.Replay, Exited: s.Exited - earlier.Exited}
}

// CPUTimes returns the CPU time used so far by the primary's processes and
// by each replica's (zero for a server that is not running): the
// postmaster, every live process whose parent chain leads to it, and the
// children it has already reaped (its cutime and cstime), so that a backend
// that exits between two calls is not lost. A live process counts its
// on-CPU time in nanoseconds from /proc/<pid>/schedstat where the kernel has
// it, else from /proc/<pid>/stat in clock ticks; its kind comes from its
// process title (/proc/<pid>/cmdline). Subtract two calls to get what the
// servers spent in between. Linux only.
func (c *Cluster) CPUTimes() (primary ServerCPU, replicas []ServerCPU, err error) {
	c.mu.Lock()
	roots := []int{c.primary.pid()}
	for _, r := range c.replicas {
		roots = append(roots, r.pid())
	}
	c.mu.Unlock()

	ents, err := os.ReadDir("/proc")
	if err != nil {
		return ServerCPU{}, nil, fmt.Errorf("pgtest: CPU times: %w", err)
	}
	procs := make(map[int]procCPU, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcCPU(pid); ok {
			procs[pid] = p
		}
	}
	root := make(map[int]int, len(roots)) // postmaster pid -> index in roots
	for i, pid := range roots {
		if pid != 0 {
			root[pid] = i
		}
	}
	totals := make([]ServerCPU, len(roots))
	for pid, p := range procs {
		if i, ok := root[pid]; ok {
			totals[i].Total += p.own + p.kids
			totals[i].Exited += p.kids
			continue
		}
		// Walk up a few generations: backends and auxiliary processes are
		// the postmaster's children, and none of them forks further.
		for up, depth := p.ppid, 0; up > 1 && depth < 4; depth++ {
			if i, ok := root[up]; ok {
				t := &totals[i]
				t.Total += p.own
				switch processKind(pid) {
				case "backend":
					t.Backends += p.own
				case "walsender":
					t.WALSenders += p.own
				case "replay":
					t.Replay += p.own
				}
				break
			}
			up = procs[up].ppid
		}
	}
	return totals[0], totals[1:], nil
}

// processKind tells a server process's kind from its title: "postgres:
// [cluster_name: ]walsender ...", "startup recovering ...", "walreceiver
// ...", or for a client backend "user database host(port) state".
func processKind(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	title := strings.TrimPrefix(strings.TrimRight(string(b), "\x00"), "postgres: ")
	if i := strings.Index(title, ": "); i >= 0 && strings.HasPrefix(title, "pgtest-") {
		title = title[i+2:]
	}
	word, _, _ := strings.Cut(title, " ")
	switch {
	case word == "walsender":
		return "walsender"
	case word == "startup" || word == "walreceiver":
		return "replay"
	case strings.Contains(title, "127.0.0.1("):
		return "backend"
	}
	return ""
}

type procCPU struct {
	ppid      int
	own, kids time.Duration
}

// readProcCPU reads a process's parent and CPU times from /proc.
func readProcCPU(pid int) (procCPU, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procCPU{}, false
	}
	// pid (comm) state ppid ... utime stime cutime cstime (fields 14-17).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procCPU{}, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 15 {
		return procCPU{}, false
	}
	var p procCPU
	p.ppid, _ = strconv.Atoi(f[1])
	tick := func(s string) time.Duration {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.Duration(n) * clockTick
	}
	p.own = tick(f[11]) + tick(f[12])
	p.kids = tick(f[13]) + tick(f[14])
	if s, err := os.ReadFile(dir + "/schedstat"); err == nil {
		if g := strings.Fields(string(s)); len(g) > 0 {
			if ns, err := strconv.ParseInt(g[0], 10, 64); err == nil {
				p.own = time.Duration(ns)
			}
		}
	}
	return p, true
}
