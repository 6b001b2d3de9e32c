// Package buncompat proves that bun (github.com/uptrace/bun with
// bun/dialect/pgdialect) runs on pgwait unchanged: its tests, against a real
// primary and replica, show read-your-writes through bun's API with the reads
// served by the replica. Its differential test (diff_test.go) runs one bun
// workload through pgx stdlib and through pgwait and compares every outcome
// (see internal/difftest). It has no code of its own.
package buncompat
