package driver

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/internal/classify"
	"github.com/pgwait/pgwait/internal/lsn"
)

// Tx is a transaction on one server: a read-only transaction on a replica
// (which first waits for the scope's LSN), anything else on the primary.
// Every statement of the transaction runs on that server.
type Tx struct {
	conn    *Conn
	side    *side
	ctx     context.Context // BeginTx's context: its token is advanced on commit
	primary bool
	wrote   bool // a statement that may write ran (primary only)
}

// BeginTx starts a transaction. Read-only transactions go to a replica unless
// the context forces the primary or the isolation level is serializable
// (which a hot standby does not offer); the replica first waits, in the same
// round trip as BEGIN, for the writes the read must see.
func (c *Conn) BeginTx(ctx context.Context, opts sqldriver.TxOptions) (sqldriver.Tx, error) {
	if c.tx != nil {
		return nil, errors.New("pgwait: a transaction is already open on this connection")
	}
	begin, err := beginSQL(opts)
	if err != nil {
		return nil, err
	}
	if opts.ReadOnly && len(c.c.replicas) > 0 && pgwait.RouteFrom(ctx) != pgwait.RoutePrimary &&
		!c.primaryInBlock() && sql.IsolationLevel(opts.Isolation) != sql.LevelSerializable {
		tx, err := c.beginReplica(ctx, begin)
		if tx != nil || err != nil {
			return tx, err
		}
		c.c.stats.fallbacks.Add(1)
	}
	s, err := c.primarySide(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.simple(ctx, begin); err != nil {
		return nil, err
	}
	c.tx = &Tx{conn: c, side: s, ctx: ctx, primary: true}
	return c.tx, nil
}

// beginReplica opens a read-only transaction on a replica. It returns nil, nil
// when the primary should take the transaction instead.
func (c *Conn) beginReplica(ctx context.Context, begin string) (*Tx, error) {
	target := c.target(ctx)
	s, err := c.replicaSide(ctx, target)
	if err != nil {
		if c.c.cfg.NoReplica == pgwait.NoReplicaFail && ctx.Err() == nil {
			return nil, pgwait.ErrNoReplica
		}
		return nil, nil
	}
	rep := s.rep
	if target <= lsn.LSN(rep.replayed.Load()) || c.usePolling(s) && target == 0 {
		if err := s.simple(ctx, begin); err != nil {
			return nil, c.replicaBeginFailed(ctx, s, err)
		}
		c.tx = &Tx{conn: c, side: s, ctx: ctx}
		return c.tx, nil
	}
	ms, ok := c.waitBudget(ctx)
	if !ok {
		c.c.stats.waitTimeouts.Add(1)
		return nil, c.timeoutError(rep, target, 0)
	}
	c.c.stats.waits.Add(1)
	start := time.Now()
	var status string
	if c.usePolling(s) {
		status, err = s.poll(ctx, target, time.Duration(ms)*time.Millisecond)
		if err == nil && status == waitSuccess {
			err = s.simple(ctx, begin)
		}
	} else {
		status, err = s.beginWait(ctx, begin, target, ms)
	}
	c.c.stats.observeWait(time.Since(start))
	if err != nil {
		return nil, c.replicaBeginFailed(ctx, s, err)
	}
	switch status {
	case waitSuccess:
		rep.confirm(target)
		c.seen = lsn.Max(c.seen, target)
		c.tx = &Tx{conn: c, side: s, ctx: ctx}
		return c.tx, nil
	case waitTimeout:
		c.c.stats.waitTimeouts.Add(1)
		if ms >= c.c.cfg.WaitTimeout.Milliseconds() {
			c.c.eject(rep, target)
		}
		return nil, c.timeoutError(rep, target, ms)
	case waitNotInRecovery:
		c.c.stats.promotions.Add(1)
		c.c.eject(rep, 0)
		c.dropSide(s)
		return nil, nil
	}
	return nil, errors.New("pgwait: WAIT FOR LSN on replica " + rep.addr + " answered " + status)
}

// timeoutError is nil under the primary-fallback policy.
func (c *Conn) timeoutError(rep *replica, target lsn.LSN, ms int64) error {
	if c.c.cfg.OnTimeout == pgwait.TimeoutFail {
		return &pgwait.WaitTimeoutError{Replica: rep.addr, LSN: pgwait.LSN(target), Timeout: time.Duration(ms) * time.Millisecond}
	}
	return nil
}

// replicaBeginFailed returns nil (use the primary) when the replica broke,
// and the error when the statement itself failed.
func (c *Conn) replicaBeginFailed(ctx context.Context, s *side, err error) error {
	if s.broken() && ctx.Err() == nil {
		c.c.stats.replicaErrors.Add(1)
		c.c.eject(s.rep, 0)
		c.dropSide(s)
		return nil
	}
	return err
}

func (tx *Tx) exec(ctx context.Context, query string, args []any) (sqldriver.Result, error) {
	tx.noteWrite(query)
	cls := tx.conn.classify(query)
	if isScript(cls, args) {
		return result(tx.side.execScript(ctx, query))
	}
	tag, err := tx.side.exec(ctx, query, args)
	if err == nil {
		dropsStatements(tx.side, cls)
	}
	return result(tag, err)
}

func (tx *Tx) query(ctx context.Context, query string, args []any) (sqldriver.Rows, error) {
	tx.noteWrite(query)
	return wrapRows(tx.side.query(ctx, query, args))
}

func (tx *Tx) noteWrite(query string) {
	if tx.primary && !tx.wrote && tx.conn.classify(query).Kind != classify.Read {
		tx.wrote = true
	}
}

// Commit commits; on the primary, after a write, it captures the commit's LSN
// in the same round trip.
func (tx *Tx) Commit() error {
	c := tx.conn
	if c.tx != tx {
		return errors.New("pgwait: transaction already closed")
	}
	c.tx = nil
	if tx.primary && tx.wrote {
		l, err := tx.side.commitCapture(tx.ctx)
		if err != nil {
			return err
		}
		c.committed(tx.ctx, l)
		return nil
	}
	mrr := tx.side.pg.Exec(tx.ctx, "COMMIT")
	results, err := mrr.ReadAll()
	if err != nil {
		return err
	}
	if len(results) == 1 && results[0].CommandTag.String() == "ROLLBACK" {
		return errRolledBack
	}
	return nil
}

// Rollback rolls the transaction back.
func (tx *Tx) Rollback() error {
	c := tx.conn
	if c.tx != tx {
		return errors.New("pgwait: transaction already closed")
	}
	c.tx = nil
	err := tx.side.simple(context.WithoutCancel(tx.ctx), "ROLLBACK")
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) {
		tx.side.std.Close()
	}
	return err
}
