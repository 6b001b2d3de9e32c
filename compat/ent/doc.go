// Package entcompat proves that ent's SQL driver and query builder
// (entgo.io/ent/dialect/sql) run on pgwait unchanged: its tests, against a
// real primary and replica, show read-your-writes through
// entsql.OpenDB(dialect.Postgres, db) with the reads served by the replica.
// Generated ent clients call the same driver methods (Exec, Query, Tx,
// BeginTx). Its differential test (diff_test.go) runs one ent workload through
// pgx stdlib and through pgwait and compares every outcome (see
// internal/difftest). It has no code of its own.
package entcompat
