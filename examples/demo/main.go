// Command demo shows what pgwait is for. It starts a local PostgreSQL 19
// primary with a streaming replica, then writes a row and immediately reads
// it back, many times over, two ways:
//
//   - naive: writes on the primary, reads on the replica with plain pgx
//     stdlib, as an application that sends reads to replicas would;
//   - pgwait: both through one pgwait *sql.DB.
//
// It prints how many reads missed their own write, and the latencies.
//
//	go -C examples run ./demo
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

func main() {
	pairs := flag.Int("pairs", 2000, "write-then-read pairs per mode")
	flag.Parse()
	if err := run(*pairs); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(pairs int) error {
	ctx := context.Background()
	fmt.Println("starting a PostgreSQL 19 primary and a streaming replica on 127.0.0.1 ...")
	start := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	cluster, err := pgtest.Start(startCtx, pgtest.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer cluster.Close()
	fmt.Printf("cluster ready in %v\n\n", time.Since(start).Round(time.Millisecond))

	replica, err := pgx.ParseConfig(cluster.ReplicaDSN(0))
	if err != nil {
		return err
	}
	dsn := cluster.PrimaryDSN() + " pgwait_replicas=" + net.JoinHostPort(replica.Host, strconv.Itoa(int(replica.Port)))

	primary, err := sql.Open("pgx", cluster.PrimaryDSN())
	if err != nil {
		return err
	}
	defer primary.Close()
	plainReplica, err := sql.Open("pgx", cluster.ReplicaDSN(0))
	if err != nil {
		return err
	}
	defer plainReplica.Close()
	db, err := sql.Open("pgwait", dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	if _, err := primary.ExecContext(ctx, "CREATE TABLE demo (id bigserial PRIMARY KEY, v text NOT NULL)"); err != nil {
		return err
	}
	// Let the replica catch up on the CREATE TABLE before measuring.
	time.Sleep(200 * time.Millisecond)

	fmt.Printf("%d pairs of INSERT then SELECT of the same row, one after the other:\n\n", pairs)
	fmt.Printf("%-28s %8s %12s %12s %12s\n", "mode", "stale", "read p50", "read p99", "pair p50")
	naive, err := measure(ctx, pairs, "naive", primary, plainReplica)
	if err != nil {
		return err
	}
	naive.print("primary + plain replica")
	waited, err := measure(ctx, pairs, "pgwait", db, db)
	if err != nil {
		return err
	}
	waited.print("pgwait")

	st, err := pgwaitdriver.StatsOf(ctx, db)
	if err != nil {
		return err
	}
	fmt.Printf("\npgwait: %d writes, %d reads on the replica, %d on the primary; %d waited (WAIT FOR LSN in the read's round trip), %d needed no wait, %d timed out\n",
		st.Writes, st.ReplicaReads, st.PrimaryReads, st.Waits, st.WaitsSkipped, st.WaitTimeouts)
	if waited.stale != 0 {
		return fmt.Errorf("pgwait returned %d stale reads", waited.stale)
	}
	return nil
}

type result struct {
	stale      int
	reads, all []time.Duration
}

func measure(ctx context.Context, pairs int, prefix string, writer, reader *sql.DB) (result, error) {
	var r result
	for i := range pairs {
		v := fmt.Sprintf("%s-%d", prefix, i)
		t0 := time.Now()
		if _, err := writer.ExecContext(ctx, "INSERT INTO demo (v) VALUES ($1)", v); err != nil {
			return r, err
		}
		t1 := time.Now()
		var n int
		if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM demo WHERE v = $1", v).Scan(&n); err != nil {
			return r, err
		}
		t2 := time.Now()
		if n == 0 {
			r.stale++
		}
		r.reads = append(r.reads, t2.Sub(t1))
		r.all = append(r.all, t2.Sub(t0))
	}
	return r, nil
}

func (r result) print(name string) {
	fmt.Printf("%-28s %8s %12v %12v %12v\n", name,
		fmt.Sprintf("%d/%d", r.stale, len(r.reads)),
		percentile(r.reads, 50), percentile(r.reads, 99), percentile(r.all, 50))
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}
