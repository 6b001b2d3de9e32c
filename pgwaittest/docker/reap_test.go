package docker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"github.com/pgwait/pgwait/pgwaittest/docker"
)

// reapChildEnv makes TestReapAfterKill the child: it starts a pair, prints
// its ID and waits to be killed.
const reapChildEnv = "PGWAIT_DOCKER_REAP_CHILD"

// TestReapAfterKill starts a pair in a child test binary, kills the child
// with SIGKILL (no clean-up runs), and checks that Reap removes the pair's
// containers, volumes and network, and nothing of a pair whose process
// still runs. It does not run in parallel with the other tests: their Start
// would reap the child's pair too, before the test looks at it.
func TestReapAfterKill(t *testing.T) {
	if os.Getenv(reapChildEnv) != "" {
		pair, err := docker.Start(context.Background())
		if err != nil {
			fmt.Println("error:", strings.ReplaceAll(err.Error(), "\n", " "))
			os.Exit(1)
		}
		fmt.Println("pair:", pair.ID())
		time.Sleep(10 * time.Minute) // until killed
		return
	}
	live := docker.New(t) // this process's: Reap must leave it alone

	child := exec.Command(os.Args[0], "-test.run=^TestReapAfterKill$", "-test.count=1")
	child.Env = append(os.Environ(), reapChildEnv+"=1")
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "pair: ") || strings.HasPrefix(s.Text(), "error: ") {
				line <- s.Text()
				return
			}
		}
		line <- "error: the child exited without a pair"
	}()
	var id string
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "pair: ") {
			t.Fatalf("child: %s", l)
		}
		id = strings.TrimPrefix(l, "pair: ")
	case <-time.After(4 * time.Minute):
		t.Fatal("the child started no pair in 4 minutes")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	client := live.Pool().Client
	containers, volumes, networks := leftovers(t, client, id)
	if len(containers) != 2 || len(volumes) == 0 || len(networks) != 1 {
		t.Fatalf("after SIGKILL, pair %s has %d containers, %d volumes, %d networks; want 2, some, 1 before Reap", id, len(containers), len(volumes), len(networks))
	}
	t.Logf("pair %s left behind: containers %v, volumes %v, network %v", id, containers, volumes, networks)

	reaped, err := docker.Reap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(reaped, id) || slices.Contains(reaped, live.ID()) {
		t.Errorf("Reap removed pairs %v; want %s and not this process's %s", reaped, id, live.ID())
	}
	c, _, n := leftovers(t, client, id)
	if len(c) != 0 || len(n) != 0 {
		t.Errorf("after Reap, pair %s still has containers %v, networks %v", id, c, n)
	}
	for _, v := range volumes {
		if _, err := client.InspectVolume(v); err == nil {
			t.Errorf("after Reap, volume %s of pair %s remains", v, id)
		}
	}
	if c, _, n := leftovers(t, client, live.ID()); len(c) != 2 || len(n) != 1 {
		t.Errorf("Reap touched this process's pair: %d containers, %d networks left", len(c), len(n))
	}
}

// leftovers lists what the engine still has of pair id: container names,
// the volumes they mount, network names.
func leftovers(t *testing.T, client *dc.Client, id string) (containers, volumes, networks []string) {
	t.Helper()
	filter := map[string][]string{"label": {"org.pgwait.pgwaittest=" + id}}
	cs, err := client.ListContainers(dc.ListContainersOptions{All: true, Filters: filter, Context: t.Context()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		containers = append(containers, strings.Join(c.Names, ","))
		for _, m := range c.Mounts {
			if m.Name != "" && m.Driver != "" { // a volume, not a bind mount
				volumes = append(volumes, m.Name)
			}
		}
	}
	ns, err := client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {"org.pgwait.pgwaittest=" + id: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		networks = append(networks, n.Name)
	}
	return containers, volumes, networks
}

// TestStartFailsCleanly: when the primary cannot start (here, a setting
// postgres rejects), Start says why, with the container's log, and leaves
// nothing behind.
func TestStartFailsCleanly(t *testing.T) {
	t.Parallel()
	pair, err := docker.Start(t.Context(), docker.WithServerSetting("no_such_setting", "1"))
	if err == nil {
		pair.Close()
		t.Fatal("Start succeeded with a setting postgres does not know")
	}
	if errors.Is(err, docker.ErrNoDocker) && !docker.Required() {
		t.Skip(err)
	}
	if !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("Start's error does not show the server's complaint: %v", err)
	}
	m := regexp.MustCompile(`pgwait-primary-([0-9a-f]{12})`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("Start's error does not name the primary's container: %v", err)
	}
	pool, err := dockertest.NewPool("")
	if err != nil {
		t.Fatal(err)
	}
	if c, _, n := leftovers(t, pool.Client, m[1]); len(c) != 0 || len(n) != 0 {
		t.Errorf("the failed Start of pair %s left containers %v, networks %v", m[1], c, n)
	}
}
