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

// CPUTimes returns the CPU time (user plus system) used so far by the
// primary's processes and by each replica's (0 for a server that is not
// running): the postmaster, every live process whose parent chain leads to
// it, and the children it has already reaped (its cutime and cstime), so
// that a backend that exits between two calls is not lost. A live process
// counts its on-CPU time in nanoseconds from /proc/<pid>/schedstat where the
// kernel has it, else from /proc/<pid>/stat in clock ticks. Subtract two
// calls to get what the servers spent in between. Linux only.
func (c *Cluster) CPUTimes() (primary time.Duration, replicas []time.Duration, err error) {
	c.mu.Lock()
	roots := []int{c.primary.pid()}
	for _, r := range c.replicas {
		roots = append(roots, r.pid())
	}
	c.mu.Unlock()

	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, fmt.Errorf("pgtest: CPU times: %w", err)
	}
	type proc struct {
		ppid int
		own  time.Duration // the process's own time
		kids time.Duration // its reaped children's
	}
	procs := make(map[int]proc, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcCPU(pid); ok {
			procs[pid] = proc{p.ppid, p.own, p.kids}
		}
	}
	root := make(map[int]int, len(roots)) // postmaster pid -> index in roots
	for i, pid := range roots {
		if pid != 0 {
			root[pid] = i
		}
	}
	totals := make([]time.Duration, len(roots))
	for pid, p := range procs {
		if i, ok := root[pid]; ok {
			totals[i] += p.own + p.kids
			continue
		}
		// Walk up a few generations: backends and auxiliary processes are
		// the postmaster's children, and none of them forks further.
		for up, depth := p.ppid, 0; up > 1 && depth < 4; depth++ {
			if i, ok := root[up]; ok {
				totals[i] += p.own
				break
			}
			up = procs[up].ppid
		}
	}
	return totals[0], totals[1:], nil
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
