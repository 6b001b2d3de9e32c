package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwait/pgwait/internal/lsn"
)

// The baselines below talk to the servers through pgconn, with nothing of
// database/sql or pgwait in between: what the protocol itself costs.

// lsnQuery is the query pgwait pipelines after a write to read its commit's
// WAL position.
const lsnQuery = "SELECT pg_current_wal_insert_lsn()::text"

// rawPrimary writes on the primary over pgconn and captures the commit's LSN
// in the write's round trip, in each of the shapes the write section
// compares (writeCaptureTx is the one pgwait uses).
type rawPrimary struct {
	conn                 *pgx.Conn
	pg                   *pgconn.PgConn
	update               *pgconn.StatementDescription
	lsn                  *pgconn.StatementDescription // lsnQuery, prepared
	begin, commit        *pgconn.StatementDescription
	walBlock, walSegment uint64
	params               [][]byte
}

func newRawPrimary(ctx context.Context, e *env) (*rawPrimary, error) {
	conn, err := pgx.Connect(ctx, e.primaryDSN)
	if err != nil {
		return nil, err
	}
	r := &rawPrimary{conn: conn, pg: conn.PgConn(), walBlock: e.walBlock, walSegment: e.walSegment, params: make([][]byte, 2)}
	if r.update, err = r.pg.Prepare(ctx, "bench_update", updateSQL, nil); err == nil {
		r.lsn, err = r.pg.Prepare(ctx, "bench_lsn", lsnQuery, nil)
	}
	if err == nil {
		r.begin, err = r.pg.Prepare(ctx, "bench_begin", "BEGIN", nil)
	}
	if err == nil {
		r.commit, err = r.pg.Prepare(ctx, "bench_commit", "COMMIT", nil)
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return r, nil
}

func (r *rawPrimary) close() { r.conn.Close(context.Background()) }

func (r *rawPrimary) bind(id int, n int64) {
	r.params[0] = strconv.AppendInt(r.params[0][:0], int64(id), 10)
	r.params[1] = strconv.AppendInt(r.params[1][:0], n, 10)
}

// write runs the UPDATE alone, as one prepared statement.
func (r *rawPrimary) write(ctx context.Context, id int, n int64) error {
	r.bind(id, n)
	tag, err := r.pg.ExecStatement(ctx, r.update, r.params, nil, nil).Close()
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("updated %d rows", tag.RowsAffected())
	}
	return err
}

// writeCapture runs the UPDATE and returns its commit's LSN, in one round
// trip.
func (r *rawPrimary) writeCapture(ctx context.Context, id int, n int64) (lsn.LSN, error) {
	return r.captureTwoSyncs(ctx, id, n, false)
}

// writeCapturePrepared is writeCapture with the LSN query prepared once
// rather than parsed with each write: what a driver could save.
func (r *rawPrimary) writeCapturePrepared(ctx context.Context, id int, n int64) (lsn.LSN, error) {
	return r.captureTwoSyncs(ctx, id, n, true)
}

// captureTwoSyncs sends the write, Sync, the LSN query (prepared or parsed
// each time), Sync.
func (r *rawPrimary) captureTwoSyncs(ctx context.Context, id int, n int64, prepared bool) (lsn.LSN, error) {
	r.bind(id, n)
	p := r.pg.StartPipeline(ctx)
	p.SendQueryStatement(r.update, r.params, nil, nil)
	p.SendPipelineSync()
	if prepared {
		p.SendQueryStatement(r.lsn, nil, nil, nil)
	} else {
		p.SendQueryParams(lsnQuery, nil, nil, nil, nil)
	}
	if err := p.Sync(); err != nil {
		p.Close()
		return 0, err
	}
	l, err := r.readCapture(p)
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return l, err
}

// writeCaptureTx wraps the write in BEGIN and COMMIT and reads the LSN after
// the COMMIT, all before a single Sync, every statement prepared. The server
// then answers in one flush instead of two (it flushes at each Sync). A
// failed write leaves the transaction aborted at the Sync: only that error
// path pays a ROLLBACK round trip.
func (r *rawPrimary) writeCaptureTx(ctx context.Context, id int, n int64) (lsn.LSN, error) {
	r.bind(id, n)
	return r.captureTx(ctx, r.update, r.params)
}

func (r *rawPrimary) captureTx(ctx context.Context, write *pgconn.StatementDescription, params [][]byte) (lsn.LSN, error) {
	p := r.pg.StartPipeline(ctx)
	p.SendQueryStatement(r.begin, nil, nil, nil)
	p.SendQueryStatement(write, params, nil, nil)
	p.SendQueryStatement(r.commit, nil, nil, nil)
	p.SendQueryStatement(r.lsn, nil, nil, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return 0, err
	}
	l, err := r.readTx(p)
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err != nil && r.pg.TxStatus() != 'I' && !r.pg.IsClosed() {
		if _, rerr := r.pg.Exec(ctx, "ROLLBACK").ReadAll(); rerr != nil {
			return 0, errors.Join(err, rerr)
		}
	}
	return l, err
}

// writeCaptureTxBatch is writeCaptureTx with the same messages sent as a
// pgconn.Batch and read through its MultiResultReader, as pgwait sends
// them: a pipeline's bookkeeping allocates for each request, a batch's does
// not.
func (r *rawPrimary) writeCaptureTxBatch(ctx context.Context, id int, n int64) (lsn.LSN, error) {
	r.bind(id, n)
	return r.captureTxBatch(ctx, r.update, r.params)
}

func (r *rawPrimary) captureTxBatch(ctx context.Context, write *pgconn.StatementDescription, params [][]byte) (lsn.LSN, error) {
	var b pgconn.Batch
	b.ExecStatement(r.begin, nil, nil, nil)
	b.ExecStatement(write, params, nil, nil)
	b.ExecStatement(r.commit, nil, nil, nil)
	b.ExecStatement(r.lsn, nil, nil, nil)
	mrr := r.pg.ExecBatch(ctx, &b)
	l, err := r.readTxBatch(mrr)
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	if err != nil && r.pg.TxStatus() != 'I' && !r.pg.IsClosed() {
		if _, rerr := r.pg.Exec(ctx, "ROLLBACK").ReadAll(); rerr != nil {
			return 0, errors.Join(err, rerr)
		}
	}
	return l, err
}

// readTxBatch reads what captureTxBatch sent: BEGIN, the write, COMMIT and
// the LSN query's row.
func (r *rawPrimary) readTxBatch(mrr *pgconn.MultiResultReader) (lsn.LSN, error) {
	var text string
	for i, want := range []string{"BEGIN", "", "COMMIT", "LSN"} {
		if !mrr.NextResult() {
			if err := mrr.Close(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("the batch ended before its result %d", i+1)
		}
		rr := mrr.ResultReader()
		for rr.NextRow() {
			text = string(rr.Values()[0])
		}
		tag, err := rr.Close()
		switch {
		case err != nil:
			return 0, err
		case want == "" && tag.RowsAffected() != 1:
			return 0, fmt.Errorf("updated %d rows", tag.RowsAffected())
		case want == "BEGIN" || want == "COMMIT":
			if tag.String() != want {
				return 0, fmt.Errorf("%s answered %q", want, tag)
			}
		}
	}
	l, err := lsn.Parse(text)
	if err != nil {
		return 0, err
	}
	return lsn.EndOfRecord(l, r.walBlock, r.walSegment), nil
}

func (r *rawPrimary) readTx(p *pgconn.Pipeline) (lsn.LSN, error) {
	if err := readTag(p, "BEGIN"); err != nil {
		return 0, err
	}
	if err := readUpdate(p); err != nil {
		return 0, err
	}
	if err := readTag(p, "COMMIT"); err != nil {
		return 0, err
	}
	return r.readLSN(p)
}

func readTag(p *pgconn.Pipeline, want string) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return fmt.Errorf("expected %s's result, got %T", want, res)
	}
	if tag, err := rr.Close(); err != nil {
		return err
	} else if tag.String() != want {
		return fmt.Errorf("%s answered %q", want, tag)
	}
	return nil
}

func readUpdate(p *pgconn.Pipeline) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return fmt.Errorf("expected the UPDATE's result, got %T", res)
	}
	if tag, err := rr.Close(); err != nil {
		return err
	} else if tag.RowsAffected() != 1 {
		return fmt.Errorf("updated %d rows", tag.RowsAffected())
	}
	return nil
}

func (r *rawPrimary) readCapture(p *pgconn.Pipeline) (lsn.LSN, error) {
	if err := readUpdate(p); err != nil {
		return 0, err
	}
	if err := expectSync(p); err != nil {
		return 0, err
	}
	return r.readLSN(p)
}

// readLSN reads the LSN query's result and the Sync after it.
func (r *rawPrimary) readLSN(p *pgconn.Pipeline) (lsn.LSN, error) {
	res, err := p.GetResults()
	if err != nil {
		return 0, err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return 0, fmt.Errorf("expected the LSN query's result, got %T", res)
	}
	var text string
	for rr.NextRow() {
		text = string(rr.Values()[0])
	}
	if _, err := rr.Close(); err != nil {
		return 0, err
	}
	if err := expectSync(p); err != nil {
		return 0, err
	}
	l, err := lsn.Parse(text)
	if err != nil {
		return 0, err
	}
	return lsn.EndOfRecord(l, r.walBlock, r.walSegment), nil
}

func expectSync(p *pgconn.Pipeline) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	if _, ok := res.(*pgconn.PipelineSync); !ok {
		return fmt.Errorf("expected a pipeline sync, got %T", res)
	}
	return nil
}

// rawReplica reads from the replica: after WAIT FOR LSN in the same round
// trip, after polling, or straight away.
type rawReplica struct {
	conn   *pgx.Conn
	pg     *pgconn.PgConn
	sel    *pgconn.StatementDescription
	replay *pgconn.StatementDescription
	params [][]byte
}

// waitTimeoutMS is the TIMEOUT of the baselines' WAIT FOR LSN, pgwait's
// default wait timeout.
const waitTimeoutMS = 1000

// binaryResult asks for the bigint column in binary, as pgwait and pgx do.
var binaryResult = []int16{pgx.BinaryFormatCode}

func newRawReplica(ctx context.Context, e *env) (*rawReplica, error) {
	conn, err := pgx.Connect(ctx, e.replicaDSN)
	if err != nil {
		return nil, err
	}
	r := &rawReplica{conn: conn, pg: conn.PgConn(), params: make([][]byte, 1)}
	if r.sel, err = r.pg.Prepare(ctx, "bench_select", selectSQL, nil); err == nil {
		r.replay, err = r.pg.Prepare(ctx, "bench_replay", "SELECT pg_last_wal_replay_lsn()::text", nil)
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return r, nil
}

func (r *rawReplica) close() { r.conn.Close(context.Background()) }

// read reads row id.
func (r *rawReplica) read(ctx context.Context, id int) (int64, error) {
	r.params[0] = strconv.AppendInt(r.params[0][:0], int64(id), 10)
	return readN(r.pg.ExecStatement(ctx, r.sel, r.params, nil, binaryResult))
}

func readN(rr *pgconn.ResultReader) (int64, error) {
	var n int64
	rows := 0
	for rr.NextRow() {
		v := rr.Values()[0]
		if len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		rows++
	}
	if _, err := rr.Close(); err != nil {
		return 0, err
	}
	if rows != 1 {
		return 0, fmt.Errorf("read %d rows, want 1", rows)
	}
	return n, nil
}

// waitRead sends WAIT FOR LSN and the read in one round trip, as pgwait does,
// and returns the row and the wait's status. The read runs whatever the
// status: after a timeout its row may be stale.
func (r *rawReplica) waitRead(ctx context.Context, target lsn.LSN, id int) (int64, string, error) {
	r.params[0] = strconv.AppendInt(r.params[0][:0], int64(id), 10)
	wait := make([]byte, 0, 80)
	wait = append(wait, "WAIT FOR LSN '"...)
	wait = target.AppendText(wait)
	wait = append(wait, "' WITH (TIMEOUT "...)
	wait = strconv.AppendInt(wait, waitTimeoutMS, 10)
	wait = append(wait, ", NO_THROW)"...)
	p := r.pg.StartPipeline(ctx)
	p.SendQueryParams(string(wait), nil, nil, nil, nil)
	p.SendQueryStatement(r.sel, r.params, nil, binaryResult)
	if err := p.Sync(); err != nil {
		p.Close()
		return 0, "", err
	}
	n, status, err := r.readWaited(p)
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return n, status, err
}

func (r *rawReplica) readWaited(p *pgconn.Pipeline) (int64, string, error) {
	res, err := p.GetResults()
	if err != nil {
		return 0, "", err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return 0, "", fmt.Errorf("expected WAIT FOR LSN's result, got %T", res)
	}
	var status string
	for rr.NextRow() {
		status = string(rr.Values()[0])
	}
	if _, err := rr.Close(); err != nil {
		return 0, "", err
	}
	if status != "success" && status != "timeout" {
		return 0, status, fmt.Errorf("WAIT FOR LSN answered %q", status)
	}
	if res, err = p.GetResults(); err != nil {
		return 0, status, err
	}
	if rr, ok = res.(*pgconn.ResultReader); !ok {
		return 0, status, fmt.Errorf("expected the SELECT's result, got %T", res)
	}
	n, err := readN(rr)
	if err != nil {
		return 0, status, err
	}
	return n, status, expectSync(p)
}

// pollRead asks the replica how far it has replayed, every pollEvery until
// it has replayed target, then reads. It returns how many times it asked.
// With sleepFirst the first question comes pollEvery after the call, as a
// plain "check every 1 ms" loop does; without, at once.
func (r *rawReplica) pollRead(ctx context.Context, target lsn.LSN, id int, sleepFirst bool) (int64, int, error) {
	deadline := time.Now().Add(pollGiveUp)
	polls := 0
	if sleepFirst {
		time.Sleep(pollEvery)
	}
	for {
		polls++
		res := r.pg.ExecStatement(ctx, r.replay, nil, nil, nil).Read()
		if res.Err != nil {
			return 0, polls, res.Err
		}
		if len(res.Rows) != 1 || res.Rows[0][0] == nil {
			return 0, polls, fmt.Errorf("pg_last_wal_replay_lsn() returned no position")
		}
		replayed, err := lsn.Parse(string(res.Rows[0][0]))
		if err != nil {
			return 0, polls, err
		}
		if replayed >= target {
			break
		}
		if time.Now().After(deadline) {
			return 0, polls, fmt.Errorf("replica still at %s after %v, waiting for %s", replayed, pollGiveUp, target)
		}
		time.Sleep(pollEvery)
	}
	n, err := r.read(ctx, id)
	return n, polls, err
}

// pollEvery is the polling baseline's interval; it gives up, with an error,
// after pollGiveUp.
const (
	pollEvery  = time.Millisecond
	pollGiveUp = 10 * time.Second
)
