package driver

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait/internal/lsn"
	"github.com/pgwait/pgwait/internal/tracker"
)

// Replay capture: exact monotonic reads across replicas.
//
// The tracker knows a replica's position only as last confirmed (by a wait
// or a probe); by the time the replica serves a read it may have replayed
// more, and the read sees that. A later read on another replica, known at
// the same position, would then need no wait and could see less. So, while
// the handle has more than one replica, every replica read asks for
// pg_last_wal_replay_lsn() after its statement, in the same round trip (the
// statement, the replay query, one Sync; in the simple protocol a third
// statement of the one query), and hands the answer to the tracker: at
// least what the read saw, since its snapshot came first. With one replica
// there is nothing to ask: its replay only moves forward, and what the
// primary serves is captured anyway.
//
// The position is read when the result ends: before the rows are handed
// out for a one-row result (rows.readAhead), at Next's end or Close for a
// longer one, so that a read started after a read's rows were closed never
// sees less.

// replayQuery asks a replica for its replay position.
const replayQuery = "SELECT pg_last_wal_replay_lsn()::text"

// replayObserver is told what replica reads on a side saw; the pgwait
// connection owning the side is one.
type replayObserver interface {
	// wantsReplay reports whether reads should capture the replay position.
	wantsReplay() bool
	// sawReplay receives the position read on s after a read (inRecovery
	// false: the server was promoted).
	sawReplay(s *side, l lsn.LSN, inRecovery bool)
}

// capturesReplay reports whether a read on s captures the replay position.
func (s *side) capturesReplay() bool { return s.observer != nil && s.observer.wantsReplay() }

// sendReplay queues the replay query (unnamed, whatever the exec mode: it
// leaves nothing on the server).
func sendReplay(p *pgconn.Pipeline) { p.SendQueryParams(replayQuery, nil, nil, nil, nil) }

// readReplay reads the replay query's result and reports it to s's
// observer.
func (s *side) readReplay(rr resultReader, err error) error {
	if err != nil {
		return err
	}
	var l lsn.LSN
	var parseErr error
	rows, null := 0, false
	for rr.NextRow() {
		if v := rr.Values(); len(v) == 1 {
			rows++
			if null = v[0] == nil; !null {
				l, parseErr = lsn.ParseBytes(v[0])
			}
		}
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	switch {
	case rows != 1:
		return fmt.Errorf("pgwait: protocol: pg_last_wal_replay_lsn() returned %d rows", rows)
	case parseErr != nil:
		return parseErr
	}
	s.observer.sawReplay(s, l, !null)
	return nil
}

// pipelineReplay reads the replay query's result from p.
func (s *side) pipelineReplay(p *pgconn.Pipeline) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return unexpected("the replay position", res, nil)
	}
	return s.readReplay(rr, nil)
}

// wantsReplay: while the handle has more than one replica (see above).
func (c *Conn) wantsReplay() bool { return c.c.severalReplicas() }

// sawReplay hands the tracker what a replica read saw. A replica found
// promoted leaves the rotation; its read was served all the same.
func (c *Conn) sawReplay(s *side, l lsn.LSN, inRecovery bool) {
	if !inRecovery {
		c.promoted(s.rep)
		return
	}
	c.c.track.ReplicaSaw(c.session, s.rep.index, tracker.LSN(l))
}
