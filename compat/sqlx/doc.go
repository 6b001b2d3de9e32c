// Package sqlxcompat proves that sqlx (github.com/jmoiron/sqlx) runs on pgwait
// unchanged, once the driver name is bound to $n placeholders: its tests,
// against a real primary and replica, show read-your-writes through sqlx's API
// with the reads served by the replica. Its differential test (diff_test.go)
// runs one sqlx workload through pgx stdlib and through pgwait and compares
// every outcome (see internal/difftest). It has no code of its own.
package sqlxcompat
