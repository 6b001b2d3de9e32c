package checker

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Workload drives clients that write increasing versions of a few keys and
// read them back, recording every operation in History. All clients share
// one *sql.DB, so every read must see every write acknowledged before it
// started (pgwait's default handle scope).
type Workload struct {
	DB      *sql.DB
	Clients int           // concurrent clients; default 8
	Keys    int           // keys written and read; default 32
	Table   string        // default "checker_kv"
	Timeout time.Duration // per operation; default 10s
	History History

	versions []atomic.Int64
}

func (w *Workload) defaults() {
	if w.Clients == 0 {
		w.Clients = 8
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
}

// Setup creates the table.
func (w *Workload) Setup(ctx context.Context) error {
	w.defaults()
	w.versions = make([]atomic.Int64, w.Keys)
	_, err := w.DB.ExecContext(ctx, "CREATE TABLE "+w.Table+" (k int PRIMARY KEY, ver bigint NOT NULL)")
	return err
}

// Run runs the clients until ctx ends. Each iteration writes a key and reads
// it back at once, then reads a random key.
func (w *Workload) Run(ctx context.Context) {
	w.defaults()
	var wg sync.WaitGroup
	for c := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for ctx.Err() == nil {
				key := rng.IntN(w.Keys)
				w.write(ctx, c, key)
				w.read(ctx, c, key)
				w.read(ctx, c, rng.IntN(w.Keys))
			}
		}()
	}
	wg.Wait()
}

func (w *Workload) write(ctx context.Context, client, key int) {
	if ctx.Err() != nil {
		return
	}
	op := Op{Client: client, Kind: Write, Key: key, Version: w.versions[key].Add(1)}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.Timeout)
	defer cancel()
	op.Start = time.Now()
	_, op.Err = w.DB.ExecContext(octx, "INSERT INTO "+w.Table+" (k, ver) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET ver = GREATEST("+w.Table+".ver, EXCLUDED.ver)", key, op.Version)
	op.End = time.Now()
	w.History.Add(op)
}

func (w *Workload) read(ctx context.Context, client, key int) {
	if ctx.Err() != nil {
		return
	}
	op := Op{Client: client, Kind: Read, Key: key}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.Timeout)
	defer cancel()
	op.Start = time.Now()
	op.Err = w.DB.QueryRowContext(octx, "SELECT coalesce((SELECT ver FROM "+w.Table+" WHERE k = $1), 0), pg_is_in_recovery()", key).Scan(&op.Version, &op.Replica)
	op.End = time.Now()
	w.History.Add(op)
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
