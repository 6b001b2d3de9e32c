package driver

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"

	"github.com/pgwait/pgwait"
)

func TestPoolerError(t *testing.T) {
	gone := &pgconn.PgError{Code: "26000", Message: `prepared statement "pgwait_begin" does not exist`}
	taken := &pgconn.PgError{Code: "42P05", Message: `prepared statement "pgwait_0a1b2c" already exists`}
	translated := &pgconn.PgError{Code: "26000", Message: `vorbereitete Anweisung »pgwait_0a1b2c« existiert nicht`}
	tests := []struct {
		name string
		err  error
		lost bool
	}{
		{"nil", nil, false},
		{"a statement pgwait prepared is gone", gone, true},
		{"a name pgwait freed is taken", taken, true},
		{"in the server's language", translated, true},
		{"wrapped on the way", fmt.Errorf("reading: %w", gone), true},
		{"the application's own statement", &pgconn.PgError{Code: "26000", Message: `prepared statement "mine" does not exist`}, false},
		{"another error naming pgwait's statement", &pgconn.PgError{Code: "42601", Message: `syntax error near "pgwait_x"`}, false},
		{"not from the server", errors.New(`prepared statement "pgwait_begin" does not exist`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := poolerError(tt.err)
			assert.Equal(t, tt.lost, errors.Is(got, pgwait.ErrPoolerPreparedStatements))
			if !tt.lost {
				assert.Equal(t, tt.err, got, "returned as it is")
				return
			}
			var pgErr *pgconn.PgError
			assert.ErrorAs(t, got, &pgErr, "the server's error stays reachable")
			assert.ErrorContains(t, got, "default_query_exec_mode=exec")
			assert.ErrorContains(t, got, pgErr.Message)
			assert.Same(t, got, poolerError(got), "explained once")
		})
	}
}
