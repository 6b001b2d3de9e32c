package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// FreezeReplica stops every process of replica i with SIGSTOP, like a host
// that hangs: connections to it stay open, nothing answers. ThawReplica
// resumes it; Close thaws a frozen replica before stopping it.
func (c *Cluster) FreezeReplica(i int) error {
	return c.signalReplica(i, syscall.SIGSTOP)
}

// ThawReplica resumes a replica FreezeReplica stopped (SIGCONT).
func (c *Cluster) ThawReplica(i int) error {
	return c.signalReplica(i, syscall.SIGCONT)
}

func (c *Cluster) signalReplica(i int, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.runningReplica(i)
	if err != nil {
		return err
	}
	if err := signalAll(n, sig); err != nil {
		return fmt.Errorf("pgtest: signalling replica %d: %w", i, err)
	}
	return nil
}

// signalAll sends sig to n's postmaster, first, so that it forks nothing new
// meanwhile, then to its children.
func signalAll(n *node, sig syscall.Signal) error {
	pid := n.cmd.Process.Pid
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	for _, kid := range children(pid) {
		syscall.Kill(kid, sig)
	}
	return nil
}

// KillPrimary SIGKILLs the primary's postmaster, like a crash, and returns
// once all its processes are gone. StartPrimary starts it again.
func (c *Cluster) KillPrimary(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	return c.killNode(ctx, c.primary)
}

// StartPrimary starts a killed or stopped primary again on its port (it
// recovers from its WAL) and returns once it accepts connections.
func (c *Cluster) StartPrimary(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	n := c.primary
	if n.running() {
		return nil
	}
	if err := c.launch(n); err != nil {
		return err
	}
	if err := c.waitReady(ctx, n, false); err != nil {
		c.stopNode(context.Background(), n)
		return err
	}
	return nil
}

// ErrNoBlackhole is returned by BlackholeReplica where packet filtering
// cannot be used (no nft, or not root).
var ErrNoBlackhole = errors.New("pgtest: cannot drop packets here (needs nft and root)")

// BlackholeReplica drops every packet to and from replica i's port on the
// loopback interface, like a network partition (no RST: peers wait until
// their timeouts), with an nftables table of its own; heal removes it.
// It returns ErrNoBlackhole where nftables cannot be used.
func (c *Cluster) BlackholeReplica(i int) (heal func() error, err error) {
	c.mu.Lock()
	n, err := c.runningReplica(i)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNoBlackhole
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, ErrNoBlackhole
	}
	table := fmt.Sprintf("pgtest_blackhole_%d", n.port)
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in {
		type filter hook input priority -10; policy accept;
		iif "lo" tcp dport %[2]d drop
		iif "lo" tcp sport %[2]d drop
	}
}
`, table, n.port)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: nft: %v: %s", ErrNoBlackhole, err, out)
	}
	return func() error {
		if out, err := exec.Command("nft", "delete", "table", "inet", table).CombinedOutput(); err != nil {
			return fmt.Errorf("pgtest: healing replica %d: nft: %v: %s", i, err, out)
		}
		return nil
	}, nil
}
