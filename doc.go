// Package pgwait gives database/sql applications read-your-writes consistency
// on PostgreSQL streaming replicas.
package pgwait
