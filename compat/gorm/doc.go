// Package gormcompat proves that GORM (gorm.io/gorm with
// gorm.io/driver/postgres) runs on pgwait unchanged: its tests, against a real
// primary and replica, show read-your-writes through GORM's API with the reads
// served by the replica. Its differential test (diff_test.go) runs one GORM
// workload through pgx stdlib and through pgwait and compares every outcome
// (see internal/difftest). It has no code of its own.
package gormcompat
