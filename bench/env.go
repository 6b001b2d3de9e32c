package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	_ "github.com/pgwait/pgwait/driver" // registers "pgwait"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// The statements every variant runs: a write of one row, and the read of it.
// Each variant (and each client) has rows of its own, and knows the value it
// wrote last, so a read that returns an older one is stale.
const (
	tableSQL  = "CREATE TABLE bench (id int PRIMARY KEY, n bigint NOT NULL) WITH (fillfactor = 50)"
	fillSQL   = "INSERT INTO bench SELECT g, 0 FROM generate_series(1, $1::int) g"
	updateSQL = "UPDATE bench SET n = $2 WHERE id = $1"
	selectSQL = "SELECT n FROM bench WHERE id = $1"
	tableRows = 20000
)

// env is the cluster and what the sections share.
type env struct {
	cluster    *pgtest.Cluster
	primaryDSN string
	replicaDSN string   // replica 0's
	pgwaitDSN  string   // primaryDSN plus pgwait_replicas of replica 0
	replicas   []string // host:port of every replica, numbered as in the cluster
	streaming  int      // replicas 0 to streaming-1 run; the others are stopped until a section needs them
	version    string   // server_version
	walBlock   uint64
	walSegment uint64
	nextRow    int
	dbs        []*sql.DB
}

// maxConnections leaves room for 64 clients of three variants at once.
const maxConnections = "300"

// maxReplicas is the most replicas a run starts.
const maxReplicas = 4

// startEnv starts a primary and replicas replicas (at least 2), of which
// the first 2 stream and the others are stopped until a section starts them
// (withReplicas): every section but the scale one runs with 2 replicas
// streaming, whichever of them its variants read.
func startEnv(ctx context.Context, replicas int) (*env, error) {
	replicas = max(replicas, 2)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := pgtest.Start(sctx, pgtest.Options{Replicas: replicas, Settings: map[string]string{"max_connections": maxConnections}})
	if err != nil {
		return nil, err
	}
	e := &env{cluster: c, primaryDSN: c.PrimaryDSN(), replicaDSN: c.ReplicaDSN(0), streaming: replicas}
	for i := range replicas {
		rc, err := pgx.ParseConfig(c.ReplicaDSN(i))
		if err != nil {
			e.close()
			return nil, err
		}
		e.replicas = append(e.replicas, net.JoinHostPort(rc.Host, strconv.Itoa(int(rc.Port))))
	}
	e.pgwaitDSN = e.pgwaitDSNOn(1)
	if err := e.withReplicas(sctx, 2); err != nil {
		e.close()
		return nil, err
	}
	if err := e.prepare(sctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// pgwaitDSNOn is the pgwait DSN over the primary and the first n replicas.
func (e *env) pgwaitDSNOn(n int) string {
	return e.primaryDSN + " pgwait_replicas=" + strings.Join(e.replicas[:n], ",")
}

// withReplicas makes replicas 0 to n-1 stream and stops the others, so that
// replicas no section reads replay no WAL (and the primary sends them none)
// while the machine's CPUs are measured.
func (e *env) withReplicas(ctx context.Context, n int) error {
	n = min(n, len(e.replicas))
	for i := n; i < e.streaming; i++ {
		if err := e.cluster.StopReplica(ctx, i); err != nil {
			return err
		}
	}
	for i := e.streaming; i < n; i++ {
		if err := e.cluster.StartReplica(ctx, i); err != nil {
			return err
		}
	}
	e.streaming = n
	return nil
}

// prepare creates and fills the table and waits until the replica has it.
func (e *env) prepare(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, e.primaryDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, tableSQL); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, fillSQL, tableRows); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE bench"); err != nil {
		return err
	}
	var at, block, segment string
	err = conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, current_setting('server_version'),
		current_setting('wal_block_size'), (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')`).
		Scan(&at, &e.version, &block, &segment)
	if err != nil {
		return err
	}
	if e.walBlock, err = strconv.ParseUint(block, 10, 64); err != nil {
		return err
	}
	if e.walSegment, err = strconv.ParseUint(segment, 10, 64); err != nil {
		return err
	}
	return e.waitReplayed(ctx, at)
}

// waitReplayed waits until every streaming replica has replayed WAL
// position at.
func (e *env) waitReplayed(ctx context.Context, at string) error {
	for i := range e.streaming {
		if err := e.cluster.WaitReplayed(ctx, i, at); err != nil {
			return err
		}
	}
	return nil
}

// rows hands out n rows of the table no other variant uses.
func (e *env) rows(n int) ([]int, error) {
	if e.nextRow+n > tableRows {
		return nil, fmt.Errorf("out of rows: %d used, %d more wanted, the table has %d", e.nextRow, n, tableRows)
	}
	ids := make([]int, n)
	for i := range ids {
		e.nextRow++
		ids[i] = e.nextRow
	}
	return ids, nil
}

// open opens a *sql.DB that is closed with the env, keeping up to idle
// connections open between uses (database/sql keeps 2 by default).
func (e *env) open(driverName, dsn string, idle int) (*sql.DB, error) {
	db, err := e.openLazy(driverName, dsn, idle)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		return nil, err
	}
	return db, nil
}

// openLazy is open without the Ping, which connects to the server (for
// pgwait, to the primary).
func (e *env) openLazy(driverName, dsn string, idle int) (*sql.DB, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxIdleConns(idle)
	e.dbs = append(e.dbs, db)
	return db, nil
}

func (e *env) pgwait(idle int, extra string) (*sql.DB, error) {
	return e.open("pgwait", e.pgwaitDSN+" "+extra, idle)
}

func (e *env) primary(idle int, extra string) (*sql.DB, error) {
	return e.open("pgx", e.primaryDSN+" "+extra, idle)
}

func (e *env) replica(idle int) (*sql.DB, error) {
	return e.open("pgx", e.replicaDSN, idle)
}

// closeDBs closes the handles opened so far, to free server connections for
// the next section.
func (e *env) closeDBs() {
	for _, db := range e.dbs {
		db.Close()
	}
	e.dbs = nil
}

func (e *env) close() {
	e.closeDBs()
	if e.cluster != nil {
		e.cluster.Close()
	}
}
