package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
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
	replicaDSN string
	pgwaitDSN  string // primaryDSN plus pgwait_replicas
	version    string // server_version
	walBlock   uint64
	walSegment uint64
	nextRow    int
	dbs        []*sql.DB
}

// maxConnections leaves room for 64 clients of three variants at once.
const maxConnections = "300"

func startEnv(ctx context.Context) (*env, error) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := pgtest.Start(sctx, pgtest.Options{Settings: map[string]string{"max_connections": maxConnections}})
	if err != nil {
		return nil, err
	}
	e := &env{cluster: c, primaryDSN: c.PrimaryDSN(), replicaDSN: c.ReplicaDSN(0)}
	rc, err := pgx.ParseConfig(e.replicaDSN)
	if err != nil {
		e.close()
		return nil, err
	}
	e.pgwaitDSN = e.primaryDSN + " pgwait_replicas=" + net.JoinHostPort(rc.Host, strconv.Itoa(int(rc.Port)))
	if err := e.prepare(sctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
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
	return e.cluster.WaitReplayed(ctx, 0, at)
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
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxIdleConns(idle)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
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
