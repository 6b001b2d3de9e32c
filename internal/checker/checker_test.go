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

func TestCheck(t *testing.T) {
	tests := []struct {
		name                      string
		ops                       []checker.Op
		final                     map[int]int64
		stale, nonMonotonic, lost int
		failedReads               int
	}{
		{"clean", []checker.Op{w(1, 1, 1, 0, 1), r(1, 1, 1, 2, 3), w(1, 1, 2, 4, 5), r(2, 1, 2, 6, 7)}, map[int]int64{1: 2}, 0, 0, 0, 0},
		{"stale own write", []checker.Op{w(1, 1, 1, 0, 1), r(1, 1, 0, 2, 3)}, map[int]int64{1: 1}, 1, 0, 0, 0},
		{"stale other client's write", []checker.Op{w(1, 1, 5, 0, 1), r(2, 1, 4, 2, 3)}, map[int]int64{1: 5}, 1, 0, 0, 0},
		{"concurrent write may be missed", []checker.Op{w(1, 1, 1, 0, 10), r(2, 1, 0, 5, 6)}, map[int]int64{1: 1}, 0, 0, 0, 0},
		{"going back in time", []checker.Op{w(1, 1, 2, 0, 1), r(2, 1, 2, 2, 3), r(2, 1, 1, 4, 5)}, map[int]int64{1: 2}, 1, 1, 0, 0},
		{"overlapping reads may disagree", []checker.Op{w(1, 1, 1, 0, 10), r(2, 1, 1, 2, 8), r(2, 1, 0, 3, 9)}, map[int]int64{1: 1}, 0, 0, 0, 0},
		{"lost write", []checker.Op{w(1, 1, 3, 0, 1)}, map[int]int64{1: 2}, 0, 0, 1, 0},
		{"failed write is not owed", []checker.Op{{Client: 1, Kind: checker.Write, Key: 1, Version: 9, Start: at(0), End: at(1), Err: errors.New("conn reset")}, r(1, 1, 0, 2, 3)}, map[int]int64{}, 0, 0, 0, 0},
		{"failed read", []checker.Op{{Client: 1, Kind: checker.Read, Key: 1, Start: at(0), End: at(1), Err: errors.New("boom")}}, map[int]int64{}, 0, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := checker.Check(tt.ops, tt.final)
			assert.Len(t, rep.Stale, tt.stale, "stale: %v", rep)
			assert.Len(t, rep.NonMonotonic, tt.nonMonotonic, "non-monotonic: %v", rep)
			assert.Len(t, rep.Lost, tt.lost, "lost: %v", rep)
			assert.Equal(t, tt.failedReads, rep.FailedReads)
			assert.Equal(t, tt.stale+tt.nonMonotonic+tt.lost+tt.failedReads == 0, rep.OK())
		})
	}
}
