package dockersuite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	dc "github.com/ory/dockertest/v3/docker"

	"github.com/pgwait/pgwait/examples/dockersuite"
	"github.com/pgwait/pgwait/pgwaittest/docker"
)

// pair is the package's primary and replica, shared by its tests.
var pair *docker.Pair

// TestMain starts one pair for the package's tests and removes it after
// them. The image is $PGWAIT_DOCKER_IMAGE's, or the official postgres:19.
// Without a Docker engine the suite is skipped, unless
// PGWAIT_REQUIRE_DOCKER=1.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	var err error
	pair, err = docker.Start(ctx,
		docker.WithParam("pgwait_wait_timeout", "300ms"),
		docker.WithParam("pgwait_health_interval", "250ms"))
	if errors.Is(err, docker.ErrNoDocker) && !docker.Required() {
		fmt.Println("skipping the suite:", err)
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	// Not needed in your suite: pgwait's CI checks here that Close leaves
	// nothing behind.
	volumes := volumesOf(pair)
	if err := pair.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if left := leftovers(pair, volumes); left != "" {
		fmt.Fprintln(os.Stderr, "left behind:", left)
		return 1
	}
	fmt.Printf("pair %s removed: its containers, %d volumes and network\n", pair.ID(), len(volumes))
	return code
}

func openStore(t *testing.T) *dockersuite.Store {
	t.Helper()
	db, err := sql.Open("pgwait", pair.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := dockersuite.NewStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// placeAndRead places orders from..from+n-1, reading each back at once.
func placeAndRead(t *testing.T, s *dockersuite.Store, from, n int64) {
	t.Helper()
	for id := from; id < from+n; id++ {
		if err := s.Place(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if status, err := s.Status(t.Context(), id); err != nil || status != "placed" {
			t.Fatalf("order %d right after it was placed: %q, %v", id, status, err)
		}
	}
}

func TestReadYourWrites(t *testing.T) {
	placeAndRead(t, openStore(t), 1, 100)
}

// TestReplicaPartition cuts the replica off the pair's network (docker
// network disconnect): it no longer receives the primary's WAL, and clients
// cannot reach it. Orders placed meanwhile are still read back at once (from
// the primary), and reads go back to the replica once it is reconnected.
func TestReplicaPartition(t *testing.T) {
	s := openStore(t)
	placeAndRead(t, s, 1000, 10)
	ctx := t.Context()
	if err := pair.DisconnectReplica(ctx); err != nil {
		t.Fatal(err)
	}
	reconnected := false
	defer func() {
		if !reconnected {
			_ = pair.ReconnectReplica(context.Background())
		}
	}()
	placeAndRead(t, s, 2000, 50)
	if err := pair.ReconnectReplica(ctx); err != nil {
		t.Fatal(err)
	}
	reconnected = true
	placeAndRead(t, s, 3000, 50)

	// The replica serves reads again: ask it, through pgwait, whether it is
	// in recovery.
	db, err := sql.Open("pgwait", pair.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var standby bool
		if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err == nil && standby {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reads did not go back to the replica within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func labelFilter(p *docker.Pair) map[string][]string {
	return map[string][]string{"label": {"org.pgwait.pgwaittest=" + p.ID()}}
}

// volumesOf returns the names of the volumes the pair's containers mount.
func volumesOf(p *docker.Pair) []string {
	cs, _ := p.Pool().Client.ListContainers(dc.ListContainersOptions{All: true, Filters: labelFilter(p)})
	var vs []string
	for _, c := range cs {
		for _, m := range c.Mounts {
			if m.Driver != "" {
				vs = append(vs, m.Name)
			}
		}
	}
	return vs
}

// leftovers lists what the engine still has of the pair.
func leftovers(p *docker.Pair, volumes []string) string {
	c := p.Pool().Client
	var left string
	cs, err := c.ListContainers(dc.ListContainersOptions{All: true, Filters: labelFilter(p)})
	if err != nil {
		return err.Error()
	}
	for _, x := range cs {
		left += fmt.Sprintf(" container %v", x.Names)
	}
	ns, err := c.FilteredListNetworks(dc.NetworkFilterOpts{"label": {"org.pgwait.pgwaittest=" + p.ID(): true}})
	if err != nil {
		return err.Error()
	}
	for _, n := range ns {
		left += " network " + n.Name
	}
	for _, v := range volumes {
		if _, err := c.InspectVolume(v); err == nil {
			left += " volume " + v
		}
	}
	return left
}
