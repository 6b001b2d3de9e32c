// Command sqlxapp shows pgwait under sqlx: sqlx.BindDriver tells sqlx that
// the "pgwait" driver takes PostgreSQL's $1 placeholders, and then named
// queries, Get and Select work as they do on any PostgreSQL driver, with
// reads on the replica and no stale read. It starts a local PostgreSQL 19
// primary and replica, then inserts a row and gets it at once, many times
// over, and prints how many gets missed their row (none) and where pgwait
// sent the reads.
//
//	go -C examples run ./sqlxapp
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jmoiron/sqlx"

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/examples/internal/localpg"
)

// User is the row the example inserts and gets.
type User struct {
	ID    int64  `db:"id"`
	Name  string `db:"name"`
	Email string `db:"email"`
}

// rounds is how many users the example inserts and gets back.
const rounds = 200

func init() {
	// sqlx knows the bind style of the drivers it has heard of; tell it
	// pgwait's, for NamedExec, NamedQuery, In and Rebind.
	sqlx.BindDriver("pgwait", sqlx.DOLLAR)
}

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sqlxapp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	cluster, dsn, err := localpg.Start(ctx, out, "")
	if err != nil {
		return err
	}
	defer cluster.Close()

	db, err := sqlx.Open("pgwait", dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	if _, err := db.ExecContext(ctx, `CREATE TABLE users (
		id bigserial PRIMARY KEY,
		name text NOT NULL,
		email text NOT NULL UNIQUE)`); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n%d rounds of NamedQuery(INSERT ... RETURNING id) then Get by id:\n", rounds)
	stale := 0
	start := time.Now()
	for i := range rounds {
		u := User{Name: fmt.Sprintf("user %d", i), Email: fmt.Sprintf("user%d@example.com", i)}
		// INSERT ... RETURNING comes through Query: pgwait sends it to the
		// primary all the same, and records its commit.
		rows, err := db.NamedQueryContext(ctx, "INSERT INTO users (name, email) VALUES (:name, :email) RETURNING id", u)
		if err != nil {
			return err
		}
		if rows.Next() {
			err = rows.Scan(&u.ID)
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}

		var got User
		err = db.GetContext(ctx, &got, db.Rebind("SELECT id, name, email FROM users WHERE id = ?"), u.ID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			stale++
		case err != nil:
			return err
		case got != u:
			return fmt.Errorf("got %+v, want %+v", got, u)
		}
	}
	fmt.Fprintf(out, "  %d/%d gets missed their user, in %v\n", stale, rounds, time.Since(start).Round(time.Millisecond))

	var last []User
	if err := db.SelectContext(ctx, &last, "SELECT id, name, email FROM users ORDER BY id DESC LIMIT 3"); err != nil {
		return err
	}
	fmt.Fprintf(out, "  Select of the last three: %s, %s, %s\n", last[0].Name, last[1].Name, last[2].Name)

	st, err := pgwaitdriver.StatsOf(ctx, db.DB)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\npgwait: %d writes, %d reads on the replica, %d on the primary; %d waited, %d needed no wait, %d timed out\n",
		st.Writes, st.ReplicaReads, st.PrimaryReads, st.Waits, st.WaitsSkipped, st.WaitTimeouts)
	switch {
	case stale != 0:
		return fmt.Errorf("%d stale reads", stale)
	case st.ReplicaReads < rounds:
		return fmt.Errorf("only %d reads went to the replica", st.ReplicaReads)
	}
	return nil
}
