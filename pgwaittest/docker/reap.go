package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// The labels on a pair's containers and network.
const (
	labelID   = "org.pgwait.pgwaittest"      // the pair's ID
	labelHost = "org.pgwait.pgwaittest.host" // the machine that started it (os.Hostname)
	labelPID  = "org.pgwait.pgwaittest.pid"  // the process that started it
)

// Reap removes the containers (with their volumes) and networks of the
// pairs left behind by test binaries killed before their clean-up: the pairs
// that processes of this machine started and that no longer run. It returns
// the IDs of the pairs it removed. Start calls it first, so a killed test
// binary's pairs last until the next run at most; opts may name the engine
// (WithEndpoint).
func Reap(ctx context.Context, opts ...Option) ([]string, error) {
	cfg := configure(opts)
	pool, err := connect(ctx, cfg.endpoint)
	if err != nil {
		return nil, err
	}
	return reap(ctx, pool)
}

func reap(ctx context.Context, pool *dockertest.Pool) ([]string, error) {
	host, _ := os.Hostname()
	containers, err := pool.Client.ListContainers(dc.ListContainersOptions{
		All: true, Filters: map[string][]string{"label": {labelID}}, Context: ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: listing pairs: %w", err)
	}
	networks, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {labelID: true}})
	if err != nil {
		return nil, fmt.Errorf("pgwaittest/docker: listing pairs' networks: %w", err)
	}
	var orphans []string
	consider := func(labels map[string]string) {
		id := labels[labelID]
		if id == "" || slices.Contains(orphans, id) || labels[labelHost] != host {
			return
		}
		if pid, err := strconv.Atoi(labels[labelPID]); err == nil && !processRuns(pid) {
			orphans = append(orphans, id)
		}
	}
	for _, c := range containers {
		consider(c.Labels)
	}
	for _, n := range networks {
		consider(n.Labels)
	}
	if len(orphans) == 0 {
		return nil, nil
	}
	return orphans, removePairs(ctx, pool, orphans)
}

// removePairs removes the containers, volumes and networks labelled with
// one of ids.
func removePairs(ctx context.Context, pool *dockertest.Pool, ids []string) error {
	var errs []error
	for _, id := range ids {
		filter := map[string][]string{"label": {labelID + "=" + id}}
		containers, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Filters: filter, Context: ctx})
		if err != nil {
			errs = append(errs, fmt.Errorf("pgwaittest/docker: listing pair %s's containers: %w", id, err))
		}
		for _, c := range containers {
			// Frozen containers cannot be killed until they are thawed.
			if c.State == "paused" {
				_ = pool.Client.UnpauseContainer(c.ID)
			}
			err := pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true, Context: ctx})
			var gone *dc.NoSuchContainer
			if err != nil && !errors.As(err, &gone) {
				errs = append(errs, fmt.Errorf("pgwaittest/docker: removing container %s: %w", c.ID[:12], err))
			}
		}
		volumes, err := pool.Client.ListVolumes(dc.ListVolumesOptions{Filters: filter, Context: ctx})
		if err != nil {
			errs = append(errs, fmt.Errorf("pgwaittest/docker: listing pair %s's volumes: %w", id, err))
		}
		for _, v := range volumes {
			if err := pool.Client.RemoveVolumeWithOptions(dc.RemoveVolumeOptions{Name: v.Name, Force: true, Context: ctx}); err != nil {
				errs = append(errs, fmt.Errorf("pgwaittest/docker: removing volume %s: %w", v.Name, err))
			}
		}
		networks, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {labelID + "=" + id: true}})
		if err != nil {
			errs = append(errs, fmt.Errorf("pgwaittest/docker: listing pair %s's networks: %w", id, err))
		}
		for _, n := range networks {
			if err := pool.Client.RemoveNetwork(n.ID); err != nil {
				errs = append(errs, fmt.Errorf("pgwaittest/docker: removing network %s: %w", n.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
