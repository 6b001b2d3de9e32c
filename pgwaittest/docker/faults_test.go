package docker_test

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx", for the final state read straight from the primary

	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/checker"
	"github.com/pgwait/pgwait/pgwaittest/docker"
)

// The fault-containment assertions, as for the process-level faults of
// internal/checker: no read is stale, goes back in time or misses an
// acknowledged write; no read takes longer than readBound; and a fault of
// the replica leaves writes alone: none fails, none takes longer than
// writeBound.
const (
	waitTimeout = 200 * time.Millisecond
	// Probes time out after twice the health interval: through the engine's
	// proxy, with password authentication, on a loaded CI machine, 200 ms
	// (internal/checker's 100 ms interval) ejects a healthy replica now and
	// then.
	healthInterval = 250 * time.Millisecond
	// replicaTimeout is how long a replica may stay silent before pgwait
	// abandons its connection and reads elsewhere (pgwait_replica_timeout).
	replicaTimeout = 500 * time.Millisecond
	// readBound is a generous multiple of what a read may cost a silent
	// replica: its wait plus the replica timeout.
	readBound  = 3 * (waitTimeout + replicaTimeout)
	writeBound = 2 * time.Second
)

// faultFor is how long each fault lasts: 3 s, or PGWAIT_DOCKER_FAULT_SECONDS
// (longer than the 10 s operation timeout shows that a read held by an
// unanswering replica ends only with its context).
var faultFor = func() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("PGWAIT_DOCKER_FAULT_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 3 * time.Second
}()

// TestReplicaPartitioned: the replica's container is disconnected from the
// network (docker network disconnect) for faultFor (3 s) while clients write and read
// through pgwait on the containers' network addresses, so that packets to the
// replica go nowhere and no reset comes back.
func TestReplicaPartitioned(t *testing.T) {
	t.Parallel()
	pair := faultPair(t)
	res := runFault(t, pair, pair.DisconnectReplica, pair.ReconnectReplica)
	res.checkReplicaFault(t)
}

// TestReplicaFrozen: the replica's container is frozen (docker pause) for
// faultFor (3 s): its kernel still accepts connections and acknowledges packets, and
// nothing answers.
func TestReplicaFrozen(t *testing.T) {
	t.Parallel()
	pair := faultPair(t)
	res := runFault(t, pair, pair.FreezeReplica, pair.ThawReplica)
	res.checkReplicaFault(t)
}

// TestPrimaryKilled: the primary's container is killed (docker kill) and
// started 3 s later. Through published ports, as here, the engine refuses
// connections to the dead container. Writes fail meanwhile; reads must stay
// bounded and never stale, and nothing acknowledged is lost.
func TestPrimaryKilled(t *testing.T) {
	t.Parallel()
	pair := docker.New(t,
		docker.WithParam("pgwait_wait_timeout", waitTimeout.String()),
		docker.WithParam("pgwait_replica_timeout", replicaTimeout.String()),
		docker.WithParam("pgwait_health_interval", healthInterval.String()))
	res := runFault(t, pair, pair.KillPrimary, pair.StartPrimary)
	r := res.report
	if len(r.Stale) > 0 || len(r.NonMonotonic) > 0 || len(r.Lost) > 0 {
		t.Errorf("consistency broken: %v", r)
	}
	if res.maxRead > readBound {
		t.Errorf("a read took %v with the primary down, more than %v", res.maxRead, readBound)
	}
	if res.writesAfter == 0 {
		t.Errorf("no write succeeded after the primary was started again")
	}
	if res.replicaReadsAfter == 0 {
		t.Errorf("the replica served no read in the %v after the primary was started again", 4*time.Second+faultFor)
	}
}

func faultPair(t *testing.T) *docker.Pair {
	return docker.New(t,
		docker.WithNetworkAddresses(),
		docker.WithParam("pgwait_wait_timeout", waitTimeout.String()),
		docker.WithParam("pgwait_replica_timeout", replicaTimeout.String()),
		docker.WithParam("pgwait_health_interval", healthInterval.String()))
}

type faultResult struct {
	report             checker.Report
	maxRead, maxWrite  time.Duration
	readsDuring        int // successful reads while the fault lasted
	replicaReadsAfter  int // reads the replica served after the fault ended
	writesAfter        int // successful writes after the fault ended
	recovery           time.Duration
	faultStart, healed time.Time
}

// runFault runs 4 clients through pgwait for 1 s, then injects the fault
// for faultFor, heals it, and runs 4 s + faultFor more; then checks the history.
func runFault(t *testing.T, pair *docker.Pair, inject, heal func(context.Context) error) faultResult {
	ctx := t.Context()
	db := pair.Open(t)
	w := &checker.Workload{DB: db, Clients: 4, Timeout: 10 * time.Second}
	if err := w.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	var res faultResult
	time.Sleep(time.Second)
	res.faultStart = time.Now()
	if err := inject(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(faultFor)
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := heal(hctx); err != nil {
		t.Fatal(err)
	}
	res.healed = time.Now()
	t.Logf("fault healed after %v", res.healed.Sub(res.faultStart))
	// Long enough for pgwait's probes, which back off while a replica
	// keeps failing, to find it healthy again.
	time.Sleep(4*time.Second + faultFor)
	stop()
	<-done

	primary, err := sql.Open("pgx", pair.PrimaryDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	final, err := w.Final(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	ops := w.History.Ops()
	res.report = checker.Check(ops, final)
	for _, op := range ops {
		d := op.End.Sub(op.Start)
		switch op.Kind {
		case checker.Read:
			res.maxRead = max(res.maxRead, d)
			if op.Err == nil && op.Start.After(res.faultStart) && op.End.Before(res.healed) {
				res.readsDuring++
			}
			if op.Err == nil && op.Replica && op.Start.After(res.healed) {
				res.replicaReadsAfter++
			}
		case checker.Write:
			res.maxWrite = max(res.maxWrite, d)
			if op.Err == nil && op.Start.After(res.healed) {
				res.writesAfter++
			}
		}
	}
	res.recovery = checker.RecoveryTime(ops, res.healed)
	failedBy := map[string]int{}
	for _, op := range ops {
		if op.Kind != checker.Write && op.Err != nil {
			failedBy[op.Via]++
		}
	}
	if len(failedBy) > 0 {
		t.Logf("failed reads by client role: %v", failedBy)
	}
	st, _ := driver.StatsOf(ctx, db)
	t.Logf("%v\nslowest read %v, slowest write %v; %d reads succeeded during the fault; replica serving again %v after it ended (%d reads)\nstats: %+v",
		res.report, res.maxRead, res.maxWrite, res.readsDuring, res.recovery, res.replicaReadsAfter, st)
	return res
}

// checkReplicaFault asserts what a fault of the replica must leave intact.
func (res faultResult) checkReplicaFault(t *testing.T) {
	t.Helper()
	r := res.report
	if len(r.Stale) > 0 || len(r.NonMonotonic) > 0 || len(r.Lost) > 0 {
		t.Errorf("consistency broken: %v", r)
	}
	if r.FailedWrites > 0 {
		t.Errorf("%d writes failed during a replica fault", r.FailedWrites)
	}
	if res.maxWrite > writeBound {
		t.Errorf("a write took %v during a replica fault, more than %v", res.maxWrite, writeBound)
	}
	if res.maxRead > readBound {
		t.Errorf("a read took %v during a replica fault, more than %v", res.maxRead, readBound)
	}
	if r.FailedReads > 0 {
		t.Errorf("%d reads failed during a replica fault", r.FailedReads)
	}
	if res.replicaReadsAfter == 0 {
		t.Errorf("the replica served no read in the %v after the fault ended", 4*time.Second+faultFor)
	}
}
