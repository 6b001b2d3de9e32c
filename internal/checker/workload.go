package checker

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgwait/pgwait"
)

// Workload drives clients that write increasing versions of a few keys and
// read them back, recording every operation in History. Clients share one
// *sql.DB, so every read through it must see every write acknowledged before
// it started (pgwait's default handle scope). Each client plays a Role: they
// write in different ways, carry tokens to a second handle, send hostile
// tokens, or switch tenants under row-level security.
type Workload struct {
	DB *sql.DB
	// Other is a second handle on the same cluster at pgwait_scope=token,
	// opened as another process would open it (sharing nothing in memory
	// with DB); the Token and Hostile roles read through it. Nil: the Token
	// role is left out.
	Other   *sql.DB
	Clients int           // concurrent clients; default one per role
	Keys    int           // keys written and read; default 32
	Table   string        // default "checker_kv"
	Timeout time.Duration // per operation; default 10s
	// Roles are what the clients do: client i plays Roles[i%len(Roles)].
	// Default: Roles, without Token when Other is nil.
	Roles   []Role
	History History

	versions []atomic.Int64
}

// Role is what a client does on each turn of its loop.
type Role string

// The roles, in the order the default mix gives them to clients.
const (
	// Insert writes a key with INSERT ... ON CONFLICT, reads it back, then
	// reads a random key.
	Insert Role = "insert"
	// Function writes through a SQL function, SELECT kv_put(k, v), sent to
	// the primary by pgwait.OnPrimary (Exec and Query) or by the
	// /* pgwait:primary */ hint, and reads back as Insert does.
	Function Role = "function"
	// FunctionTx writes in a read-write transaction made only of
	// SELECT kv_put(k, v), and reads back as Insert does.
	FunctionTx Role = "function tx"
	// Token writes through DB with a token, hands the token's text to a
	// reader of Other (pgwait.ParseToken), which must see the write; it
	// reads a random key there with the same token too.
	Token Role = "token"
	// Hostile reads through DB and Other with tokens not issued by the
	// cluster: the largest LSN, random LSNs, later timelines. They must
	// not fail, nor harm anybody else's reads.
	Hostile Role = "hostile token"
	// Global writes through DB and reads back through Other at the Global
	// level, without a token: the read must see every write any handle
	// had acknowledged before it started.
	Global Role = "global"
	// Bounded writes through DB and reads random keys through Other at
	// BoundedStaleness(BoundedBy): a read must see every write any handle
	// had acknowledged BoundedBy before it started.
	Bounded Role = "bounded staleness"
	// Outside writes through Other (another process, whose writes DB never
	// hears of: no token) and reads random keys through DB, without a
	// token: DB's reads owe it nothing, but must not go back in time as
	// they move between replicas that replayed it at different moments
	// (monotonic reads across replicas, which pgwait can only keep by
	// asking each replica what it had replayed).
	Outside Role = "outside writer"
	// Tenant holds a sql.Conn as a non-superuser role and switches the
	// tenant of a table under row-level security, with SET (replayed on
	// replicas) and with set_config() (which pins the connection to the
	// primary, until DISCARD ALL), reading after each switch.
	Tenant Role = "tenant"
)

// Roles is the default mix.
var Roles = []Role{Insert, Function, Token, Tenant, FunctionTx, Hostile, Global, Bounded, Outside}

// BoundedBy is the staleness bound of the Bounded role's reads.
const BoundedBy = time.Second

// tenants are the tenants of the row-level security table, each with
// rowsPerTenant rows.
var tenants = []string{"t0", "t1", "t2", "t3"}

const rowsPerTenant = 2

func (w *Workload) defaults() {
	if w.Clients == 0 {
		w.Clients = len(Roles)
	}
	if w.Keys == 0 {
		w.Keys = 32
	}
	if w.Table == "" {
		w.Table = "checker_kv"
	}
	if w.Timeout == 0 {
		w.Timeout = 10 * time.Second
	}
	if w.Roles == nil {
		for _, r := range Roles {
			if r != Token || w.Other != nil {
				w.Roles = append(w.Roles, r)
			}
		}
	}
}

// Setup creates the table, the function that writes it, and the tenants'
// table under row-level security with the role that reads it.
func (w *Workload) Setup(ctx context.Context) error {
	w.defaults()
	w.versions = make([]atomic.Int64, w.Keys)
	t := w.Table
	stmts := []string{
		"CREATE TABLE " + t + " (k int PRIMARY KEY, ver bigint NOT NULL)",
		"CREATE FUNCTION " + t + "_put(int, bigint) RETURNS bigint LANGUAGE sql AS $$ " + w.upsert("$1", "$2") + " RETURNING ver $$",
		"CREATE TABLE " + t + "_tenant (id serial PRIMARY KEY, tenant text NOT NULL)",
		"INSERT INTO " + t + "_tenant (tenant) SELECT t FROM unnest($1::text[]) t, generate_series(1, $2)",
		"CREATE ROLE " + t + "_app",
		"GRANT SELECT ON " + t + "_tenant TO " + t + "_app",
		"ALTER TABLE " + t + "_tenant ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY tenant ON " + t + "_tenant USING (tenant = current_setting('app.tenant', true))",
	}
	for _, stmt := range stmts {
		var args []any
		if strings.Contains(stmt, "$1::text[]") {
			args = []any{tenants, rowsPerTenant}
		}
		if _, err := w.DB.ExecContext(ctx, stmt, args...); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// upsert is the statement that writes version v of key k, never lowering it.
func (w *Workload) upsert(k, v string) string {
	return "INSERT INTO " + w.Table + " (k, ver) VALUES (" + k + ", " + v + ") ON CONFLICT (k) DO UPDATE SET ver = GREATEST(" + w.Table + ".ver, EXCLUDED.ver)"
}

// client is one client's state.
type client struct {
	id    int
	role  Role
	rng   *rand.Rand
	turn  int
	token *pgwait.Token // the Token role's session token
	conn  *sql.Conn     // the Tenant role's connection
}

// Run runs the clients until ctx ends.
func (w *Workload) Run(ctx context.Context) {
	w.defaults()
	var wg sync.WaitGroup
	for c := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{id: c, role: w.Roles[c%len(w.Roles)], rng: rand.New(rand.NewPCG(uint64(c), 42)), token: new(pgwait.Token)}
			defer w.dropConn(cl)
			for ; ctx.Err() == nil; cl.turn++ {
				w.step(ctx, cl)
			}
		}()
	}
	wg.Wait()
}

// step runs one turn of cl's role.
func (w *Workload) step(ctx context.Context, cl *client) {
	key := cl.rng.IntN(w.Keys)
	switch cl.role {
	case Insert, Function, FunctionTx:
		w.write(ctx, cl, key)
		w.read(ctx, cl, key)
		w.read(ctx, cl, cl.rng.IntN(w.Keys))
	case Token:
		if w.write(ctx, cl, key) != nil {
			return
		}
		w.tokenRead(ctx, cl, key)
		w.tokenRead(ctx, cl, cl.rng.IntN(w.Keys))
	case Outside:
		if w.Other == nil {
			cl.role = Insert
			return
		}
		if w.write(ctx, cl, key) != nil {
			return
		}
		w.read(ctx, cl, cl.rng.IntN(w.Keys))
		w.read(ctx, cl, cl.rng.IntN(w.Keys))
	case Bounded, Global:
		if w.Other == nil {
			cl.role = Insert
			return
		}
		if w.write(ctx, cl, key) != nil {
			return
		}
		w.levelRead(ctx, cl, key)
		w.levelRead(ctx, cl, cl.rng.IntN(w.Keys))
	case Hostile:
		w.hostileRead(ctx, cl, w.DB, 0, key)
		if w.Other != nil {
			w.hostileRead(ctx, cl, w.Other, 1, key)
		}
	case Tenant:
		w.tenantTurn(ctx, cl)
	}
}

// do runs f as op with the operation timeout, times it and records it. The
// timeout runs even once ctx ends, so that the run's end cuts no call short.
// It returns the operation's error, or ctx's when it did not run.
func (w *Workload) do(ctx context.Context, op Op, f func(ctx context.Context, op *Op) error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.Timeout)
	defer cancel()
	op.Start = time.Now()
	op.Err = f(octx, &op)
	op.End = time.Now()
	w.History.Add(op)
	return op.Err
}

// write writes a new version of key through DB, the way cl's role writes.
func (w *Workload) write(ctx context.Context, cl *client, key int) error {
	op := Op{Client: cl.id, Kind: Write, Key: key, Via: string(cl.role)}
	if ctx.Err() == nil {
		op.Version = w.versions[key].Add(1)
	}
	put := "SELECT " + w.Table + "_put($1, $2)"
	return w.do(ctx, op, func(ctx context.Context, op *Op) error {
		switch cl.role {
		case Function:
			// Three ways to send SELECT f() to the primary, in turn.
			switch cl.turn % 3 {
			case 0:
				op.Via = "function: OnPrimary Exec"
				_, err := w.DB.ExecContext(pgwait.OnPrimary(ctx), put, key, op.Version)
				return err
			case 1:
				op.Via = "function: OnPrimary Query"
				var v int64
				return w.DB.QueryRowContext(pgwait.OnPrimary(ctx), put, key, op.Version).Scan(&v)
			}
			op.Via = "function: hint"
			_, err := w.DB.ExecContext(ctx, "/* pgwait:primary */ "+put, key, op.Version)
			return err
		case FunctionTx:
			tx, err := w.DB.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			var v int64
			if err := tx.QueryRowContext(ctx, put, key, op.Version).Scan(&v); err != nil {
				tx.Rollback()
				return err
			}
			return tx.Commit()
		case Token:
			_, err := w.DB.ExecContext(pgwait.WithToken(ctx, cl.token), w.upsert("$1", "$2"), key, op.Version)
			if err == nil {
				op.Token = uint64(cl.token.LSN())
			}
			return err
		case Outside:
			op.Handle = 1
			_, err := w.Other.ExecContext(ctx, w.upsert("$1", "$2"), key, op.Version)
			return err
		}
		_, err := w.DB.ExecContext(ctx, w.upsert("$1", "$2"), key, op.Version)
		return err
	})
}

// readSQL reads a key's version and where it was read.
func (w *Workload) readSQL() string {
	return "SELECT coalesce((SELECT ver FROM " + w.Table + " WHERE k = $1), 0), pg_is_in_recovery()"
}

// read reads key through DB at handle scope.
func (w *Workload) read(ctx context.Context, cl *client, key int) {
	w.do(ctx, Op{Client: cl.id, Kind: Read, Key: key, Via: string(cl.role)}, func(ctx context.Context, op *Op) error {
		return w.DB.QueryRowContext(ctx, w.readSQL(), key).Scan(&op.Version, &op.Replica)
	})
}

// tokenRead reads key through Other with cl's token, passed as text as
// between processes.
func (w *Workload) tokenRead(ctx context.Context, cl *client, key int) {
	w.do(ctx, Op{Client: cl.id, Kind: Read, Key: key, Handle: 1, Via: string(cl.role)}, func(ctx context.Context, op *Op) error {
		tok, err := pgwait.ParseToken(cl.token.String())
		if err != nil {
			return err
		}
		op.Token = uint64(tok.LSN())
		return w.Other.QueryRowContext(pgwait.WithToken(ctx, tok), w.readSQL(), key).Scan(&op.Version, &op.Replica)
	})
}

// levelRead reads key through Other, without a token, at cl's role's
// level: BoundedStaleness(BoundedBy) or Global.
func (w *Workload) levelRead(ctx context.Context, cl *client, key int) {
	op := Op{Client: cl.id, Kind: Read, Key: key, Handle: 1, Via: string(cl.role)}
	level := pgwait.Global
	if cl.role == Bounded {
		level, op.Bound = pgwait.BoundedStaleness(BoundedBy), BoundedBy
	} else {
		op.Global = true
	}
	w.do(ctx, op, func(ctx context.Context, op *Op) error {
		return w.Other.QueryRowContext(pgwait.WithLevel(ctx, level), w.readSQL(), key).Scan(&op.Version, &op.Replica)
	})
}

// hostileToken returns the text of a token the cluster never issued.
func hostileToken(rng *rand.Rand, turn int) string {
	switch turn % 4 {
	case 0:
		return "FFFFFFFF/FFFFFFFF"
	case 1:
		return fmt.Sprintf("%X/%X", rng.Uint32(), rng.Uint32())
	case 2:
		return fmt.Sprintf("%X/%X@%d", rng.Uint32()>>rng.IntN(32), rng.Uint32(), 1+rng.IntN(20))
	}
	return "0/10@9"
}

// hostileRead reads key through db (handle number handle) with a hostile
// token. The read is checked like the handle's other reads (it carries no
// token the checker honours).
func (w *Workload) hostileRead(ctx context.Context, cl *client, db *sql.DB, handle, key int) {
	text := hostileToken(cl.rng, cl.turn)
	w.do(ctx, Op{Client: cl.id, Kind: Read, Key: key, Handle: handle, Via: string(cl.role)}, func(ctx context.Context, op *Op) error {
		tok, err := pgwait.ParseToken(text)
		if err != nil {
			return err
		}
		return db.QueryRowContext(pgwait.WithToken(ctx, tok), w.readSQL(), key).Scan(&op.Version, &op.Replica)
	})
}

// tenantTurn switches cl's connection to another tenant and reads the
// tenants' table. Of every eight turns, five switch with SET, two with
// set_config() (pinning the connection to the primary), and the last runs
// DISCARD ALL first, which unpins it (and resets the role, set again).
func (w *Workload) tenantTurn(ctx context.Context, cl *client) {
	tenant := tenants[cl.rng.IntN(len(tenants))]
	op := Op{Client: cl.id, Kind: TenantRead, Tenant: tenant, Via: string(Tenant)}
	w.do(ctx, op, func(ctx context.Context, op *Op) error {
		err := w.tenantRead(ctx, cl, op)
		if err != nil {
			w.dropConn(cl)
		}
		return err
	})
}

func (w *Workload) tenantRead(ctx context.Context, cl *client, op *Op) error {
	phase := cl.turn % 8
	if cl.conn == nil || phase == 7 {
		if cl.conn == nil {
			conn, err := w.DB.Conn(ctx)
			if err != nil {
				return err
			}
			cl.conn = conn
		} else if _, err := cl.conn.ExecContext(ctx, "DISCARD ALL"); err != nil {
			return err
		}
		if _, err := cl.conn.ExecContext(ctx, "SET ROLE "+w.Table+"_app"); err != nil {
			return err
		}
	}
	if phase == 5 || phase == 6 {
		op.Via = "tenant: set_config()"
		if _, err := cl.conn.ExecContext(ctx, "SELECT set_config('app.tenant', $1, false)", op.Tenant); err != nil {
			return err
		}
	} else {
		op.Via = "tenant: SET"
		if _, err := cl.conn.ExecContext(ctx, "SET app.tenant = '"+op.Tenant+"'"); err != nil {
			return err
		}
	}
	rows, err := cl.conn.QueryContext(ctx, "SELECT tenant, pg_is_in_recovery() FROM "+w.Table+"_tenant")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		if err := rows.Scan(&t, &op.Replica); err != nil {
			return err
		}
		op.Tenants = append(op.Tenants, t)
	}
	return rows.Err()
}

// dropConn closes cl's tenant connection, if any, and has database/sql
// discard it rather than pool it: its session holds a role and a tenant.
func (w *Workload) dropConn(cl *client) {
	if cl.conn == nil {
		return
	}
	cl.conn.Raw(func(any) error { return driver.ErrBadConn })
	cl.conn.Close()
	cl.conn = nil
}

// Final reads every key's version from the primary with a plain connection
// opened by open (not through pgwait).
func (w *Workload) Final(ctx context.Context, primary *sql.DB) (map[int]int64, error) {
	rows, err := primary.QueryContext(ctx, "SELECT k, ver FROM "+w.Table)
	if err != nil {
		return nil, fmt.Errorf("reading the final state: %w", err)
	}
	defer rows.Close()
	final := map[int]int64{}
	for rows.Next() {
		var k int
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		final[k] = v
	}
	return final, rows.Err()
}

// RecoveryTime is how long after t the first read served by a replica
// started, or -1 when none did.
func RecoveryTime(ops []Op, t time.Time) time.Duration {
	best := time.Duration(-1)
	for _, op := range ops {
		if op.Kind == Read && op.Err == nil && op.Replica && !op.Start.Before(t) {
			if d := op.Start.Sub(t); best < 0 || d < best {
				best = d
			}
		}
	}
	return best
}
