// Package localpg starts the PostgreSQL 19 primary and streaming replica the
// examples run against, on 127.0.0.1. In an application, the DSN would name
// your own primary and replicas instead.
package localpg

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwait/pgwait/internal/pgtest"
)

// Start starts a primary with one streaming replica, saying so on out, and
// returns the cluster (Close it) and the pgwait DSN for it: the primary's
// connection string, pgwait_replicas naming the replica, then extra (e.g.
// "pgwait_scope=token"), if not empty. Its error matches pgtest.ErrNoPostgres
// when PostgreSQL 19 cannot be had.
func Start(ctx context.Context, out io.Writer, extra string) (*pgtest.Cluster, string, error) {
	fmt.Fprintln(out, "starting a PostgreSQL 19 primary and a streaming replica on 127.0.0.1 ...")
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cluster, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		return nil, "", err
	}
	replica, err := pgx.ParseConfig(cluster.ReplicaDSN(0))
	if err != nil {
		cluster.Close()
		return nil, "", err
	}
	dsn := cluster.PrimaryDSN() + " pgwait_replicas=" + net.JoinHostPort(replica.Host, strconv.Itoa(int(replica.Port)))
	if extra != "" {
		dsn += " " + extra
	}
	fmt.Fprintf(out, "cluster ready in %v\n", time.Since(start).Round(time.Millisecond))
	return cluster, dsn, nil
}
