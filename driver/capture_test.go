package driver_test

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/lsn"
)

// connect opens a plain pgx connection for a test.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func currentInsertLSN(t testing.TB, conn *pgx.Conn) lsn.LSN {
	t.Helper()
	var text string
	require.NoError(t, conn.QueryRow(ctxT(t), "SELECT pg_current_wal_insert_lsn()::text").Scan(&text))
	l, err := lsn.Parse(text)
	require.NoError(t, err)
	return l
}

func waitStatus(t testing.TB, replica *pgx.Conn, l lsn.LSN, timeoutMS int) string {
	t.Helper()
	var status string
	require.NoError(t, replica.QueryRow(ctxT(t),
		fmt.Sprintf("WAIT FOR LSN '%s' WITH (TIMEOUT %d, NO_THROW)", l, timeoutMS), pgx.QueryExecModeSimpleProtocol).Scan(&status))
	return status
}

// TestInsertLSNPastPageHeaderHangsTheWait proves why pgwait maps the insert
// position back with lsn.EndOfRecord: when the last record ends exactly at a
// WAL page boundary, pg_current_wal_insert_lsn() points past the next page's
// header, no record ever ends there, and a replica waits until other WAL
// happens to be written.
func TestInsertLSNPastPageHeaderHangsTheWait(t *testing.T) {
	primary := connect(t, shared(t).PrimaryDSN())
	replica := connect(t, shared(t).ReplicaDSN(0))
	ctx := ctxT(t)
	const block = 8192
	// A non-transactional logical message of n payload bytes (n >= 256, one
	// byte prefix) takes 55+n bytes of WAL before alignment: record header
	// 24, long data header 5, message header 24, prefix "x\0" 2.
	const overhead = 55
	for attempt := range 50 {
		at := currentInsertLSN(t, primary)
		rem := block - int(uint64(at)%block)
		if rem-overhead < 256 {
			// Too close to the boundary for one record: move on a little.
			_, err := primary.Exec(ctx, "SELECT pg_logical_emit_message(false, 'x', repeat('f', 300), true)")
			require.NoError(t, err)
			continue
		}
		_, err := primary.Exec(ctx, "SELECT pg_logical_emit_message(false, 'x', repeat('a', $1::int), true)", rem-overhead)
		require.NoError(t, err)
		insert := currentInsertLSN(t, primary)
		if uint64(insert)%block != 24 {
			t.Logf("attempt %d: other WAL interleaved (insert at %v), trying again", attempt, insert)
			continue
		}
		end := lsn.EndOfRecord(insert, block, 16<<20)
		require.Equal(t, insert-24, end)
		// While nothing else writes WAL, the raw insert position is never
		// reached ...
		status := waitStatus(t, replica, insert, 300)
		if moved := currentInsertLSN(t, primary); moved != insert {
			t.Logf("attempt %d: background WAL was written during the wait (%v -> %v), trying again", attempt, insert, moved)
			continue
		}
		assert.Equal(t, "timeout", status, "a wait for the raw insert position should hang while no other WAL is written")
		// ... while the end of the last record is.
		assert.Equal(t, "success", waitStatus(t, replica, end, 5000))
		return
	}
	t.Fatal("could not make a record end exactly at a page boundary in 50 attempts")
}

var waldumpCommit = regexp.MustCompile(`len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+).*desc: COMMIT`)

// TestCapturedLSNCoversTheCommitRecord reads the primary's WAL with
// pg_waldump and checks that the LSN pgwait captured for a write is at or
// after the end of the write's own commit record, and no later than the WAL
// that exists.
func TestCapturedLSNCoversTheCommitRecord(t *testing.T) {
	waldump := filepath.Join(shared(t).BinDir(), "pg_waldump")
	cfg, err := pgwait.ParseConfig(dsnFor(t, shared(t)))
	require.NoError(t, err)
	connector, err := pgwaitdriver.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	defer db.Close()
	tbl := table(t, db)
	primary := connect(t, shared(t).PrimaryDSN())
	replica := connect(t, shared(t).ReplicaDSN(0))

	for _, mode := range []string{"exec", "query", "tx"} {
		t.Run(mode, func(t *testing.T) {
			ctx := ctxT(t)
			from := currentInsertLSN(t, primary)
			var xid string
			switch mode {
			case "exec":
				_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ('"+mode+"')")
				require.NoError(t, err)
				xid = lastXID(t, primary, tbl, mode)
			case "query":
				require.NoError(t, db.QueryRowContext(ctx, "INSERT INTO "+tbl+" (v) VALUES ($1) RETURNING pg_current_xact_id()::text", mode).Scan(&xid))
			case "tx":
				tx, err := db.BeginTx(ctx, nil)
				require.NoError(t, err)
				require.NoError(t, tx.QueryRow("INSERT INTO "+tbl+" (v) VALUES ($1) RETURNING pg_current_xact_id()::text", mode).Scan(&xid))
				require.NoError(t, tx.Commit())
			}
			captured := lsn.LSN(connector.HighWater())
			to := currentInsertLSN(t, primary)

			out, err := exec.Command(waldump, "--path", filepath.Join(shared(t).PrimaryDataDir(), "pg_wal"),
				"--start", from.String(), "--end", to.String(), "--rmgr", "Transaction").CombinedOutput()
			require.NoError(t, err, "pg_waldump: %s", out)
			var commitEnd lsn.LSN
			for _, m := range waldumpCommit.FindAllStringSubmatch(string(out), -1) {
				if m[2] != xid {
					continue
				}
				start, err := lsn.Parse(m[3])
				require.NoError(t, err)
				size, _ := strconv.ParseUint(m[1], 10, 64)
				commitEnd = start + lsn.LSN((size+7)&^7)
			}
			require.NotZero(t, commitEnd, "no COMMIT record for xid %s in:\n%s", xid, out)
			assert.GreaterOrEqual(t, captured, commitEnd, "captured LSN before the end of the commit record")
			assert.LessOrEqual(t, captured, to, "captured LSN past the WAL inserted")
			assert.Equal(t, "success", waitStatus(t, replica, captured, 5000), "the replica reaches the captured LSN")
		})
	}
}

// lastXID returns the xmin of the row written with v.
func lastXID(t testing.TB, conn *pgx.Conn, tbl, v string) string {
	t.Helper()
	var xid string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT xmin::text FROM "+tbl+" WHERE v = $1", v).Scan(&xid))
	return xid
}
