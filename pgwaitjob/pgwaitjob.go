// Package pgwaitjob carries pgwait consistency tokens through background
// jobs: the code that enqueues a job saves the token of its context into the
// job's payload, and the worker restores it, so that the worker's reads see
// the writes that led to the job, on whichever replica serves them.
//
//	// Enqueue, after the writes the job depends on:
//	job := EmailJob{OrderID: id, Token: pgwaitjob.Save(ctx)}
//
//	// Work:
//	ctx, err := pgwaitjob.Restore(ctx, job.Token)
//
// A worker that would rather run later than load the primary checks first
// that a replica has replayed the token, with a bounded wait, and asks its
// queue to retry the job later when none has:
//
//	switch err := pgwaitjob.Ready(ctx, db, 2*time.Second); {
//	case errors.Is(err, pgwaitjob.ErrRetryLater):
//		return queue.RetryIn(30 * time.Second) // your queue's way
//	case err != nil:
//		return err
//	}
//	// reads with ctx now run on a replica without waiting
//
// A payload's token comes from wherever the queue keeps it, so it is not
// trusted: Restore refuses one longer than MaxLen or that does not parse,
// and the driver resets one ahead of the primary (see pgwait's "Tokens").
package pgwaitjob

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pgwait/pgwait"
)

// MaxLen is the longest token text Restore accepts, in bytes: a pgwait
// token takes at most 28 ("FFFFFFFF/FFFFFFFF@4294967295").
const MaxLen = 64

// ErrRetryLater is wrapped by Ready's error when no replica showed the
// token's position within the wait: run the job later rather than on the
// primary.
var ErrRetryLater = errors.New("pgwaitjob: no replica has replayed the job's token yet; retry the job later")

// Save returns the text of ctx's token, for a job's payload: "" when ctx
// carries none or an empty one. Call it after the writes the job depends on,
// made with ctx, so that the token covers them.
func Save(ctx context.Context) string {
	return pgwait.TokenFrom(ctx).String()
}

// Restore returns a context carrying the token saved in a job's payload
// (Save's text; "" for none), for the worker's reads and writes. A token
// that is too long or does not parse is an error: the worker may log it and
// go on without one (pgwait.WithToken(ctx, new(pgwait.Token))), at the cost
// of reading what the job's writes may not yet be visible in.
func Restore(ctx context.Context, saved string) (context.Context, error) {
	if len(saved) > MaxLen {
		return ctx, fmt.Errorf("pgwaitjob: the job's token is %d bytes, at most %d; save it with pgwaitjob.Save", len(saved), MaxLen)
	}
	tok, err := pgwait.ParseToken(saved)
	if err != nil {
		return ctx, fmt.Errorf("pgwaitjob: the job's token: %w", err)
	}
	return pgwait.WithToken(ctx, tok), nil
}

// Ready reports whether a replica of db (a pgwait handle) has replayed the
// position ctx's token carries (and whatever else db's scope makes reads
// wait for), waiting up to maxWait (and at most db's wait timeout): nil when one has, so that the worker's
// reads run on it without waiting; an error wrapping ErrRetryLater when
// none has within maxWait or none is in rotation; another error when the
// check itself failed.
//
// It runs one read, "SELECT pg_is_in_recovery()", with ctx's token and a
// deadline of maxWait: the replica waits for the token in the same round
// trip. A wait cut short by maxWait takes no replica out of the rotation.
// Should the wait time out, the handle's policy decides: by default the
// primary answers (false), which costs it that one trivial query. A
// connection pinned to the primary (see pgwait's "Session state") always
// answers from the primary, hence ErrRetryLater: run Ready on a handle
// whose connections never pin.
func Ready(ctx context.Context, db *sql.DB, maxWait time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	var replica bool
	err := db.QueryRowContext(wctx, "SELECT pg_is_in_recovery()").Scan(&replica)
	switch {
	case err == nil && replica:
		return nil
	case err == nil:
		return fmt.Errorf("%w (the primary answered: the wait of %v ran out, or no replica is in rotation)", ErrRetryLater, maxWait)
	case errors.Is(err, pgwait.ErrWaitTimeout), errors.Is(err, pgwait.ErrNoReplica):
		return fmt.Errorf("%w: %w", ErrRetryLater, err)
	case ctx.Err() == nil && wctx.Err() != nil:
		return fmt.Errorf("%w (no answer within %v: %w)", ErrRetryLater, maxWait, err)
	}
	return fmt.Errorf("pgwaitjob: checking a replica for the job's token: %w", err)
}
