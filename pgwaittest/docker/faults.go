package docker

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	dc "github.com/ory/dockertest/v3/docker"
)

// PauseReplay pauses WAL replay on the replica and returns once it reports
// it paused: pgwait's reads that must see later writes then wait, and time
// out after pgwait_wait_timeout. ResumeReplay undoes it.
func (p *Pair) PauseReplay(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.ReplicaDSN())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: pausing replay: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		return fmt.Errorf("pgwaittest/docker: pausing replay: %w", err)
	}
	for {
		var state string
		if err := conn.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
			return fmt.Errorf("pgwaittest/docker: pausing replay: %w", err)
		}
		if state == "paused" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgwaittest/docker: pausing replay: still %q: %w", state, context.Cause(ctx))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ResumeReplay resumes WAL replay on the replica after PauseReplay.
func (p *Pair) ResumeReplay(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.ReplicaDSN())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: resuming replay: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		return fmt.Errorf("pgwaittest/docker: resuming replay: %w", err)
	}
	return nil
}

// StopReplica shuts the replica down (SIGINT: fast shutdown, which ends its
// sessions) and returns when its container has exited. StartReplica starts
// it again on the same data.
func (p *Pair) StopReplica(ctx context.Context) error {
	return p.signalAndWait(ctx, Replica, dc.SIGINT, "stopping")
}

// StartReplica starts the replica's container again after StopReplica and
// returns when the replica streams from the primary.
func (p *Pair) StartReplica(ctx context.Context) error { return p.start(ctx, Replica) }

// KillPrimary kills the primary's server (SIGKILL to the container) and
// returns when the container has exited. StartPrimary starts it again: the
// server recovers from its WAL.
func (p *Pair) KillPrimary(ctx context.Context) error {
	return p.signalAndWait(ctx, Primary, dc.SIGKILL, "killing")
}

// StartPrimary starts the primary's container again after KillPrimary and
// returns when the primary accepts connections.
func (p *Pair) StartPrimary(ctx context.Context) error { return p.start(ctx, Primary) }

func (p *Pair) signalAndWait(ctx context.Context, r Role, sig dc.Signal, what string) error {
	err := p.pool.Client.KillContainer(dc.KillContainerOptions{ID: p.ids[r], Signal: sig, Context: ctx})
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: %s the %s: %w", what, r, err)
	}
	if _, err := p.pool.Client.WaitContainerWithContext(p.ids[r], ctx); err != nil {
		return fmt.Errorf("pgwaittest/docker: %s the %s: waiting for it to exit: %w", what, r, err)
	}
	return nil
}

func (p *Pair) start(ctx context.Context, r Role) error {
	if err := p.pool.Client.StartContainerWithContext(p.ids[r], nil, ctx); err != nil {
		return fmt.Errorf("pgwaittest/docker: starting the %s again: %w", r, err)
	}
	return p.waitReady(ctx, r)
}

// PromoteReplica promotes the replica (pg_promote) and returns once it
// accepts writes. The primary keeps running: pgwait must notice on its own
// that the replica left recovery.
func (p *Pair) PromoteReplica(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.ReplicaDSN())
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: promoting the replica: %w", err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil || !ok {
		return fmt.Errorf("pgwaittest/docker: promoting the replica: pg_promote returned %v: %v", ok, err)
	}
	return nil
}

// DisconnectReplica disconnects the replica's container from the pair's
// network (docker network disconnect): the primary and the replica no longer
// reach each other, and neither does a client on the network's addresses
// (WithNetworkAddresses), whose packets go unanswered: a partition. Through a
// published port the engine refuses connections instead. ReconnectReplica
// ends it.
func (p *Pair) DisconnectReplica(ctx context.Context) error {
	err := p.pool.Client.DisconnectNetwork(p.network.ID, dc.NetworkConnectionOptions{Container: p.ids[Replica], Force: true, Context: ctx})
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: disconnecting the replica: %w", err)
	}
	return nil
}

// ReconnectReplica connects the replica's container to the pair's network
// again after DisconnectReplica and returns when it streams from the primary
// again. Its address on the network is normally the one it had, and DSN
// follows it if not.
func (p *Pair) ReconnectReplica(ctx context.Context) error {
	err := p.pool.Client.ConnectNetwork(p.network.ID, dc.NetworkConnectionOptions{
		Container:      p.ids[Replica],
		EndpointConfig: &dc.EndpointConfig{Aliases: []string{p.names[Replica]}},
		Context:        ctx,
	})
	if err != nil {
		return fmt.Errorf("pgwaittest/docker: reconnecting the replica: %w", err)
	}
	return p.waitReady(ctx, Replica)
}

// FreezeReplica freezes the replica's processes (docker pause): the kernel
// still accepts connections and acknowledges packets, but nothing answers
// queries. ThawReplica ends it.
func (p *Pair) FreezeReplica(ctx context.Context) error {
	if err := p.pool.Client.PauseContainer(p.ids[Replica]); err != nil {
		return fmt.Errorf("pgwaittest/docker: freezing the replica: %w", err)
	}
	return nil
}

// ThawReplica resumes the replica's processes after FreezeReplica.
func (p *Pair) ThawReplica(ctx context.Context) error {
	if err := p.pool.Client.UnpauseContainer(p.ids[Replica]); err != nil {
		return fmt.Errorf("pgwaittest/docker: thawing the replica: %w", err)
	}
	return nil
}

// logTails returns the last lines each container logged, for errors and
// failing tests.
func (p *Pair) logTails() string {
	var b strings.Builder
	for r, id := range p.ids {
		if id == "" {
			continue
		}
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.pool.Client.Logs(dc.LogsOptions{
			Context: ctx, Container: id, OutputStream: &out, ErrorStream: &out,
			Stdout: true, Stderr: true, Tail: "30",
		})
		cancel()
		if err != nil {
			fmt.Fprintf(&b, "pgwaittest/docker: %s (%s): reading its log: %v\n", Role(r), p.names[r], err)
			continue
		}
		fmt.Fprintf(&b, "pgwaittest/docker: %s (%s) log:\n%s\n", Role(r), p.names[r], out.String())
	}
	return b.String()
}
