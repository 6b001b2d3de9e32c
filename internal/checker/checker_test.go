package checker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pgwait/pgwait/internal/checker"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func w(client, key int, v int64, start, end int) checker.Op {
	return checker.Op{Client: client, Kind: checker.Write, Key: key, Version: v, Start: at(start), End: at(end)}
}

func r(client, key int, v int64, start, end int) checker.Op {
	return checker.Op{Client: client, Kind: checker.Read, Key: key, Version: v, Start: at(start), End: at(end), Replica: true}
}

// on moves op to another handle.
func on(handle int, op checker.Op) checker.Op { op.Handle = handle; return op }

// tok gives op a token position.
func tok(pos uint64, op checker.Op) checker.Op { op.Token = pos; return op }

// tenant is a tenant read as tenant of rows of tenants.
func tenant(as string, tenants ...string) checker.Op {
	return checker.Op{Client: 1, Kind: checker.TenantRead, Tenant: as, Tenants: tenants, Start: at(0), End: at(1)}
}

// bounded marks a read as made at BoundedStaleness of n of the tests' time
// units.
func bounded(n int, op checker.Op) checker.Op {
	op.Bound = at(n).Sub(at(0))
	return op
}

// global marks a read as made at the Global level.
func global(op checker.Op) checker.Op {
	op.Global = true
	return op
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name                      string
		ops                       []checker.Op
		final                     map[int]int64
		stale, nonMonotonic, lost int
		failedReads               int
		leaks                     int
	}{
		{"clean", []checker.Op{w(1, 1, 1, 0, 1), r(1, 1, 1, 2, 3), w(1, 1, 2, 4, 5), r(2, 1, 2, 6, 7)}, map[int]int64{1: 2}, 0, 0, 0, 0, 0},
		{"stale own write", []checker.Op{w(1, 1, 1, 0, 1), r(1, 1, 0, 2, 3)}, map[int]int64{1: 1}, 1, 0, 0, 0, 0},
		{"stale other client's write", []checker.Op{w(1, 1, 5, 0, 1), r(2, 1, 4, 2, 3)}, map[int]int64{1: 5}, 1, 0, 0, 0, 0},
		{"concurrent write may be missed", []checker.Op{w(1, 1, 1, 0, 10), r(2, 1, 0, 5, 6)}, map[int]int64{1: 1}, 0, 0, 0, 0, 0},
		{"going back in time", []checker.Op{w(1, 1, 2, 0, 1), r(2, 1, 2, 2, 3), r(2, 1, 1, 4, 5)}, map[int]int64{1: 2}, 1, 1, 0, 0, 0},
		{"overlapping reads may disagree", []checker.Op{w(1, 1, 1, 0, 10), r(2, 1, 1, 2, 8), r(2, 1, 0, 3, 9)}, map[int]int64{1: 1}, 0, 0, 0, 0, 0},
		{"lost write", []checker.Op{w(1, 1, 3, 0, 1)}, map[int]int64{1: 2}, 0, 0, 1, 0, 0},
		{"failed write is not owed", []checker.Op{{Client: 1, Kind: checker.Write, Key: 1, Version: 9, Start: at(0), End: at(1), Err: errors.New("conn reset")}, r(1, 1, 0, 2, 3)}, map[int]int64{}, 0, 0, 0, 0, 0},
		{"failed read", []checker.Op{{Client: 1, Kind: checker.Read, Key: 1, Start: at(0), End: at(1), Err: errors.New("boom")}}, map[int]int64{}, 0, 0, 0, 1, 0},

		// Handles are separate scopes; tokens carry writes across them.
		{"a token-scope handle's own writes are not owed without a token", []checker.Op{on(1, w(1, 1, 1, 0, 1)), on(1, r(2, 1, 0, 2, 3))}, map[int]int64{1: 1}, 0, 0, 0, 0, 0},
		{"another handle's write is not owed", []checker.Op{w(1, 1, 1, 0, 1), on(1, r(2, 1, 0, 2, 3))}, map[int]int64{1: 1}, 0, 0, 0, 0, 0},
		{"token read sees its write", []checker.Op{tok(100, w(1, 1, 3, 0, 1)), on(1, tok(100, r(1, 1, 3, 2, 3)))}, map[int]int64{1: 3}, 0, 0, 0, 0, 0},
		{"token read misses its write", []checker.Op{tok(100, w(1, 1, 3, 0, 1)), on(1, tok(100, r(1, 1, 2, 2, 3)))}, map[int]int64{1: 3}, 1, 0, 0, 0, 0},
		{"token covers other clients' earlier writes", []checker.Op{tok(50, w(2, 1, 5, 0, 1)), tok(100, w(1, 1, 4, 2, 3)), on(1, tok(100, r(1, 1, 4, 4, 5)))}, map[int]int64{1: 5}, 1, 0, 0, 0, 0},
		{"token does not cover later positions", []checker.Op{tok(100, w(1, 1, 3, 0, 1)), tok(200, w(2, 1, 4, 2, 3)), on(1, tok(100, r(1, 1, 3, 4, 5)))}, map[int]int64{1: 4}, 0, 0, 0, 0, 0},
		{"token reads may go back past their token", []checker.Op{tok(100, w(1, 1, 3, 0, 1)), tok(200, w(2, 1, 4, 2, 3)), on(1, tok(200, r(1, 1, 4, 4, 5))), on(1, tok(100, r(1, 1, 3, 6, 7)))}, map[int]int64{1: 4}, 0, 0, 0, 0, 0},
		{"monotonic reads hold across the handle's clients", []checker.Op{r(1, 1, 2, 0, 1), r(2, 1, 1, 2, 3)}, map[int]int64{1: 2}, 0, 1, 0, 0, 0},
		{"overlapping reads of two clients may disagree", []checker.Op{r(1, 1, 2, 0, 5), r(2, 1, 1, 1, 6)}, map[int]int64{1: 2}, 0, 0, 0, 0, 0},
		{"another handle's clients may disagree", []checker.Op{on(1, r(1, 1, 2, 0, 1)), on(1, r(2, 1, 1, 2, 3))}, map[int]int64{1: 2}, 0, 0, 0, 0, 0},
		{"monotonic reads hold per handle", []checker.Op{w(1, 1, 2, 0, 1), r(2, 1, 2, 2, 3), on(1, r(2, 1, 1, 4, 5))}, map[int]int64{1: 2}, 0, 0, 0, 0, 0},
		{"lost write through another handle", []checker.Op{on(1, w(1, 1, 3, 0, 1))}, map[int]int64{1: 2}, 0, 0, 1, 0, 0},

		// Global reads see every handle's acknowledged writes.
		{"global read sees another handle's write", []checker.Op{w(1, 1, 3, 0, 1), global(on(1, r(2, 1, 3, 2, 3)))}, map[int]int64{1: 3}, 0, 0, 0, 0, 0},
		{"global read misses another handle's write", []checker.Op{w(1, 1, 3, 0, 1), global(on(1, r(2, 1, 2, 2, 3)))}, map[int]int64{1: 3}, 1, 0, 0, 0, 0},
		{"global read may miss a concurrent write", []checker.Op{w(1, 1, 3, 0, 10), global(on(1, r(2, 1, 2, 2, 3)))}, map[int]int64{1: 3}, 0, 0, 0, 0, 0},

		// Bounded reads see what was acknowledged at least their bound before.
		{"bounded read sees an old enough write", []checker.Op{w(1, 1, 3, 0, 1), bounded(3, on(1, r(2, 1, 3, 5, 6)))}, map[int]int64{1: 3}, 0, 0, 0, 0, 0},
		{"bounded read misses an old enough write", []checker.Op{w(1, 1, 3, 0, 1), bounded(3, on(1, r(2, 1, 2, 5, 6)))}, map[int]int64{1: 3}, 1, 0, 0, 0, 0},
		{"bounded reads may go back within their bound", []checker.Op{w(1, 1, 3, 0, 5), bounded(3, on(1, r(2, 1, 3, 6, 7))), bounded(3, on(1, r(2, 1, 2, 7, 8)))}, map[int]int64{1: 3}, 0, 0, 0, 0, 0},
		{"bounded read may miss a recent write", []checker.Op{w(1, 1, 3, 0, 3), bounded(3, on(1, r(2, 1, 2, 5, 6)))}, map[int]int64{1: 3}, 0, 0, 0, 0, 0},

		// Tenant reads under row-level security.
		{"tenant sees its rows", []checker.Op{tenant("a", "a", "a")}, nil, 0, 0, 0, 0, 0},
		{"tenant sees another tenant's row", []checker.Op{tenant("a", "a", "b")}, nil, 0, 0, 0, 0, 1},
		{"tenant sees none of its rows", []checker.Op{tenant("a")}, nil, 0, 0, 0, 0, 1},
		{"failed tenant read", []checker.Op{{Client: 1, Kind: checker.TenantRead, Tenant: "a", Err: errors.New("boom")}}, nil, 0, 0, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := checker.Check(tt.ops, tt.final)
			assert.Len(t, rep.Stale, tt.stale, "stale: %v", rep)
			assert.Len(t, rep.NonMonotonic, tt.nonMonotonic, "non-monotonic: %v", rep)
			assert.Len(t, rep.Lost, tt.lost, "lost: %v", rep)
			assert.Len(t, rep.Leaks, tt.leaks, "leaks: %v", rep)
			assert.Equal(t, tt.failedReads, rep.FailedReads)
			assert.Equal(t, tt.stale+tt.nonMonotonic+tt.lost+tt.failedReads+tt.leaks == 0, rep.OK())
		})
	}
}
