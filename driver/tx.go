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
	"github.com/pgwait/pgwait/internal/tracker"
)

// Tx is a transaction on one server: a read-only transaction on a replica
// (which first waits for the scope's LSN), anything else on the primary.
// Every statement of the transaction runs on that server.
type Tx struct {
	conn     *Conn
	side     *side
	ctx      context.Context // BeginTx's context: its token is advanced on commit
	primary  bool
	readOnly bool
}

// rollbackTimeout bounds the ROLLBACK of a transaction, which runs whatever
// the state of the caller's context.
const rollbackTimeout = 5 * time.Second

// BeginTx starts a transaction. Read-only transactions go to a replica unless
// the context forces the primary, the connection is pinned to the primary,
// or the isolation level is serializable (which a hot standby does not
// offer); the replica first waits, in the same round trip as BEGIN, for the
// writes the read must see.
func (c *Conn) BeginTx(ctx context.Context, opts sqldriver.TxOptions) (_ sqldriver.Tx, err error) {
	defer func() { err = poolerError(err) }()
	if c.tx != nil {
		return nil, errors.New("pgwait: a transaction is already open on this connection")
	}
	begin, err := beginSQL(opts)
	if err != nil {
		return nil, err
	}
	if opts.ReadOnly && c.c.hasReplicas() && !c.level(ctx).IsPrimary() && !c.pinned &&
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
	c.tx = &Tx{conn: c, side: s, ctx: ctx, primary: true, readOnly: opts.ReadOnly}
	return c.tx, nil
}

// beginReplica opens a read-only transaction on a replica. It returns nil, nil
// when the primary should take the transaction instead.
func (c *Conn) beginReplica(ctx context.Context, begin string) (*Tx, error) {
	tg, maxStale, err := c.plan(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.replicaSide(ctx, tg.LSN, maxStale, nil)
	if err != nil {
		if c.c.cfg.NoReplica == pgwait.NoReplicaFail && ctx.Err() == nil {
			return nil, pgwait.ErrNoReplica
		}
		return nil, nil
	}
	w := waitInfo{target: tg.LSN, status: waitSuccess}
	var b *replicaBound
	if c.c.track.NeedsWait(s.rep.index, tg.LSN) {
		w, err = c.wait(ctx, s, tg, func(ms int64) (string, error) {
			b = c.watchReplica(s, time.Duration(ms)*time.Millisecond)
			defer b.stop()
			if c.usePolling(s) {
				status, err := s.poll(ctx, tg.LSN, time.Duration(ms)*time.Millisecond)
				if err == nil && status == waitSuccess {
					err = s.simple(ctx, begin)
				}
				return status, err
			}
			return s.beginWait(ctx, begin, tg.LSN, ms)
		})
	} else {
		b = c.watchReplica(s, 0)
		err = s.simple(ctx, begin)
	}
	if b != nil && b.stop() {
		// The replica stopped answering: the primary takes the transaction.
		c.wentSilent(s)
		return nil, nil
	}
	if err != nil {
		return nil, c.replicaBeginFailed(ctx, s, err)
	}
	switch w.status {
	case waitSuccess:
		c.c.track.ReplicaRead(c.session, s.rep.index, tg.LSN)
		c.tx = &Tx{conn: c, side: s, ctx: ctx, readOnly: true}
		return c.tx, nil
	case waitTimeout:
		return nil, c.timeoutError(s, w)
	}
	return nil, nil // promoted: the primary takes it
}

// replicaBeginFailed returns nil (use the primary) when the replica broke,
// and the error when the statement itself failed.
func (c *Conn) replicaBeginFailed(ctx context.Context, s *side, err error) error {
	if s.broken() && ctx.Err() == nil {
		c.c.stats.replicaErrors.Add(1)
		s.rep.status.failed(err)
		c.eject(s.rep, tracker.Failed)
		c.dropSide(s)
		return nil
	}
	return err
}

func (tx *Tx) exec(ctx context.Context, query string, args []any) (sqldriver.Result, error) {
	cls := tx.conn.classify(query)
	fromStdin, toStdout := copyKind(query) // copy.go
	if fromStdin {
		return nil, errCopyFromStdin
	}
	if isScript(cls, args) || toStdout && len(args) == 0 {
		tag, err := tx.side.execScript(ctx, query)
		tx.after(cls, query, err)
		return result(tag, err)
	}
	tag, err := tx.side.exec(ctx, query, args)
	tx.after(cls, query, err)
	return result(tag, err)
}

func (tx *Tx) query(ctx context.Context, query string, args []any) (sqldriver.Rows, error) {
	cls := tx.conn.classify(query)
	r, err := tx.side.query(ctx, query, args)
	tx.after(cls, query, err)
	return wrapRows(r, err)
}

// after records what a statement inside the transaction did to the session
// of its server. A SET inside a transaction is undone by a rollback and
// stays only on its server: it pins the connection, as statements that
// leave session state do.
func (tx *Tx) after(cls classify.Result, query string, err error) {
	if err != nil {
		return
	}
	if !tx.primary {
		if cls.Reason == "DEALLOCATE statement" {
			tx.side.resetStatements(dropsAll(query))
		}
		return
	}
	tx.conn.afterPrimary(cls, query, nil)
	if cls.Kind == classify.Session && tx.conn.c.hasReplicas() {
		tx.conn.pin()
	}
}

// Commit commits. On the primary, a transaction that was not read-only has
// its commit's LSN read in the same round trip, whatever its statements
// were: a SELECT may call a function that writes.
func (tx *Tx) Commit() (err error) {
	defer func() { err = poolerError(err) }()
	c := tx.conn
	if c.tx != tx {
		return errTxClosed
	}
	c.tx = nil
	if tx.primary && !tx.readOnly && c.tracking(tx.ctx) {
		l, err := tx.side.commitCapture(tx.ctx)
		if err != nil {
			return err
		}
		c.answered(tx.ctx, classify.Result{Kind: classify.Write}, l)
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

// Rollback rolls the transaction back, within rollbackTimeout whatever the
// caller's context; a connection that cannot roll back is closed.
func (tx *Tx) Rollback() error {
	c := tx.conn
	if c.tx != tx {
		return errTxClosed
	}
	c.tx = nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(tx.ctx), rollbackTimeout)
	defer cancel()
	err := tx.side.simple(ctx, "ROLLBACK")
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) {
		tx.side.std.Close()
	}
	return err
}
