package driver_test

// pgwait behind PgBouncer (Debian's package, started by the tests).

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// bouncers starts a PgBouncer in front of c's primary and replica in mode,
// and returns a pgwait DSN through them.
func bouncers(t *testing.T, c *pgtest.Cluster, mode string, extra ...string) string {
	t.Helper()
	ctx := ctxT(t)
	var addrs []string
	for _, target := range []string{hostPort(t, c.PrimaryDSN()), hostPort(t, c.ReplicaDSN(0))} {
		b, err := c.StartBouncer(ctx, target, mode, extra...)
		if errors.Is(err, pgtest.ErrNoBouncer) && !pgtest.Required() {
			t.Skip(err)
		}
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		addrs = append(addrs, b.Addr())
	}
	host, port, err := net.SplitHostPort(addrs[0])
	require.NoError(t, err)
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable pgwait_replicas=%s pgwait_health_interval=100ms", host, port, addrs[1])
}

func openDSN(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgwait", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.Ping())
	return db
}

// TestBehindPgBouncerSessionPooling: in session pooling every pgwait
// feature works as with direct connections: reads reach the replica (a
// replica connection refused by the pooler would send them all to the
// primary, silently) and see the caller's writes.
func TestBehindPgBouncerSessionPooling(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx := ctxT(t)
	db := openDSN(t, bouncers(t, c, "session"))
	tbl := table(t, db)
	eventuallyOnReplica(t, ctx, db)
	readYourWrites(t, db, tbl, "bouncer", 200)
	st := stats(t, db)
	assert.Positive(t, st.ReplicaReads)
	assert.Zero(t, st.ReplicaErrors, "replica connections through PgBouncer failed")
}

// TestBehindPgBouncerTransactionPooling: in transaction pooling, where a
// server connection serves another client between transactions, pgwait
// works in the exec modes that leave no named statement on the server
// (PgBouncer 1.18, Debian 12's, does not track prepared statements): reads
// reach the replica and see the caller's writes.
func TestBehindPgBouncerTransactionPooling(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	dsn := bouncers(t, c, "transaction")
	for _, mode := range []string{"exec", "simple_protocol", "cache_describe"} {
		t.Run(mode, func(t *testing.T) {
			ctx := ctxT(t)
			db := openDSN(t, dsn+" default_query_exec_mode="+mode)
			db.SetMaxOpenConns(8)
			tbl := table(t, db)
			eventuallyOnReplica(t, ctx, db)
			readYourWrites(t, db, tbl, mode, 100)
			st := stats(t, db)
			assert.Positive(t, st.ReplicaReads)
			assert.Zero(t, st.ReplicaErrors)
		})
	}
}

// TestBehindPgBouncerTransactionPoolingCacheStatement: the default
// cache_statement mode cannot work behind PgBouncer 1.18 in transaction
// pooling (a statement prepared on one server connection is run on
// another); the statements that fail for it say so, and what to configure,
// with an error that still wraps the server's.
func TestBehindPgBouncerTransactionPoolingCacheStatement(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	db := openDSN(t, bouncers(t, c, "transaction"))
	db.SetMaxOpenConns(8)
	tbl := table(t, db)
	var mu sync.Mutex
	var lost, other []error
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				// A new statement text each time: prepared, then run, in two
				// round trips that PgBouncer may give two server connections.
				_, err := db.Exec(fmt.Sprintf("INSERT INTO %s (v) VALUES ($1) /* %d */", tbl, i), fmt.Sprint(w, "-", i))
				if err == nil {
					var n int
					err = db.QueryRow(fmt.Sprintf("SELECT count(*) FROM %s WHERE v = $1 /* %d */", tbl, i), fmt.Sprint(w, "-", i)).Scan(&n)
				}
				mu.Lock()
				switch {
				case errors.Is(err, pgwait.ErrPoolerPreparedStatements):
					lost = append(lost, err)
				case err != nil:
					other = append(other, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d of 800 statements failed for the lost prepared statements, %d otherwise", len(lost), len(other))
	for _, err := range other {
		t.Errorf("an error that is not the pooler's: %v", err)
	}
	require.NotEmpty(t, lost, "PgBouncer never switched server connections between a preparation and its use")
	err := lost[0]
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "the server's error is still there")
	assert.Contains(t, []string{"26000", "42P05"}, pgErr.Code)
	assert.ErrorContains(t, err, "default_query_exec_mode=exec")
	assert.ErrorContains(t, err, "max_prepared_statements")
}
