// Package dockersuite is an example of a user's code with a dockertest
// suite: orders_test.go starts one PostgreSQL 19 primary and replica in
// Docker for the whole package (TestMain) with
// github.com/pgwait/pgwait/pgwaittest/docker, and tests this package's
// Store through pgwait against it, replica faults included.
//
// Run it from the repository root, with a Docker engine:
//
//	go -C examples/dockersuite test ./...
//
// PGWAIT_DOCKER_IMAGE picks the image (default: the official postgres:19);
// without a registry, build one with scripts/postgres19-image and set
// PGWAIT_DOCKER_IMAGE=pgwait-local/postgres:19.
package dockersuite

import (
	"context"
	"database/sql"
	"fmt"
)

// Store keeps orders. Its *sql.DB is a pgwait handle: Place writes on the
// primary, Status reads on a replica, and sees what Place wrote.
type Store struct{ db *sql.DB }

// NewStore returns a Store on db, creating its table if need be.
func NewStore(ctx context.Context, db *sql.DB) (*Store, error) {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, status text NOT NULL)"); err != nil {
		return nil, fmt.Errorf("creating the orders table: %w", err)
	}
	return &Store{db: db}, nil
}

// Place records a new order.
func (s *Store) Place(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO orders (id, status) VALUES ($1, 'placed')", id)
	return err
}

// Status returns an order's status, or sql.ErrNoRows.
func (s *Store) Status(ctx context.Context, id int64) (string, error) {
	var status string
	err := s.db.QueryRowContext(ctx, "SELECT status FROM orders WHERE id = $1", id).Scan(&status)
	return status, err
}
