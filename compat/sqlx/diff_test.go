package sqlxcompat_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/difftest"
)

type diffPerson struct {
	ID      int64          `db:"id"`
	First   string         `db:"first_name"`
	Last    sql.NullString `db:"last_name"`
	Email   string         `db:"email"`
	Born    time.Time      `db:"born"`
	Score   float64        `db:"score"`
	Balance string         `db:"balance"`
	Tags    []byte         `db:"tags"`
}

type diffPlace struct {
	Country string         `db:"country"`
	City    sql.NullString `db:"city"`
	Code    int            `db:"telcode"`
}

// personPlace embeds two structs, as sqlx's README does for joins.
type personPlace struct {
	diffPerson
	Place diffPlace `db:"place"`
}

const sqlxSchema = `
CREATE TABLE person (
	id bigserial PRIMARY KEY,
	first_name text NOT NULL,
	last_name text,
	email text UNIQUE NOT NULL,
	born timestamptz NOT NULL DEFAULT '2000-01-01 00:00:00+00',
	score float8 NOT NULL DEFAULT 0,
	balance numeric(12,2) NOT NULL DEFAULT 0,
	tags jsonb NOT NULL DEFAULT '[]',
	place_country text
);
CREATE TABLE place (
	country text PRIMARY KEY,
	city text,
	telcode int NOT NULL
);
`

// sqlxWorkload is an application's use of sqlx: a schema script, named
// inserts (one and a batch), Get and Select into structs, joins into
// embedded structs, In expansion, prepared and named statements (with their
// prepare-time errors), transactions, and map and slice scans.
func sqlxWorkload(t *testing.T, sqlDB *sql.DB, tr *difftest.Transcript) {
	db := sqlx.NewDb(sqlDB, "pgwait")
	ctx := context.Background()
	res := func(r sql.Result, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		n, err := r.RowsAffected()
		return fmt.Sprintf("rows=%d", n), err
	}
	born := time.Date(1990, 4, 5, 6, 7, 8, 9000, time.FixedZone("X", 3600))

	tr.Do("schema script", func() (any, error) { return res(db.ExecContext(ctx, sqlxSchema)) })
	tr.Do("NamedExec one", func() (any, error) {
		return res(db.NamedExecContext(ctx, `INSERT INTO person (first_name, last_name, email, born, score, balance, tags)
			VALUES (:first_name, :last_name, :email, :born, :score, :balance, :tags)`,
			diffPerson{First: "Jason", Last: sql.NullString{String: "Moiron", Valid: true}, Email: "jm@example.com", Born: born, Score: 1.5, Balance: "10.25", Tags: []byte(`["a"]`)}))
	})
	tr.Do("NamedExec batch", func() (any, error) {
		ps := []diffPerson{
			{First: "John", Email: "jd@example.com", Born: born.AddDate(1, 0, 0), Balance: "0", Tags: []byte(`[]`)},
			{First: "Jane", Last: sql.NullString{String: "Citizen", Valid: true}, Email: "jc@example.com", Born: born, Score: -2, Balance: "-3.50", Tags: []byte(`{"k": [1, 2]}`)},
		}
		return res(db.NamedExecContext(ctx, `INSERT INTO person (first_name, last_name, email, born, score, balance, tags)
			VALUES (:first_name, :last_name, :email, :born, :score, :balance, :tags)`, ps))
	})
	tr.Do("NamedExec map", func() (any, error) {
		return res(db.NamedExecContext(ctx, "INSERT INTO place (country, city, telcode) VALUES (:country, :city, :telcode)",
			[]map[string]any{{"country": "United States", "city": "New York", "telcode": 1}, {"country": "Hong Kong", "city": nil, "telcode": 852}}))
	})
	tr.Do("NamedExec duplicate", func() (any, error) {
		return res(db.NamedExecContext(ctx, "INSERT INTO person (first_name, email) VALUES (:first_name, :email)", diffPerson{First: "x", Email: "jm@example.com"}))
	})
	tr.Do("NamedQuery RETURNING", func() (any, error) {
		rows, err := db.NamedQueryContext(ctx, "INSERT INTO person (first_name, email, place_country) VALUES (:first, :email, :country) RETURNING id, born",
			map[string]any{"first": "Ann", "email": "ann@example.com", "country": "Hong Kong"})
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []map[string]any
		for rows.Next() {
			m := map[string]any{}
			if err := rows.MapScan(m); err != nil {
				return out, err
			}
			out = append(out, m)
		}
		return out, rows.Err()
	})
	tr.Do("UPDATE places", func() (any, error) {
		return res(db.ExecContext(ctx, "UPDATE person SET place_country = $1 WHERE place_country IS NULL AND id <= $2", "United States", 2))
	})

	tr.Do("Get struct", func() (any, error) {
		var p diffPerson
		return p, db.GetContext(ctx, &p, "SELECT id, first_name, last_name, email, born, score, balance, tags FROM person WHERE email = $1", "jm@example.com")
	})
	tr.Do("Get no rows", func() (any, error) {
		var p diffPerson
		return p, db.GetContext(ctx, &p, "SELECT id, first_name, last_name, email, born, score, balance, tags FROM person WHERE id = $1", 999)
	})
	tr.Do("Get missing destination", func() (any, error) {
		var p diffPlace
		return p, db.GetContext(ctx, &p, "SELECT *, 1 AS extra FROM place LIMIT 1")
	})
	tr.Do("Select structs", func() (any, error) {
		var ps []diffPerson
		return ps, db.SelectContext(ctx, &ps, "SELECT id, first_name, last_name, email, born, score, balance, tags FROM person ORDER BY id")
	})
	tr.Do("Select scalars", func() (any, error) {
		var names []string
		return names, db.SelectContext(ctx, &names, "SELECT first_name FROM person ORDER BY first_name DESC")
	})
	tr.Do("Select join into embedded structs", func() (any, error) {
		var ps []personPlace
		return ps, db.SelectContext(ctx, &ps, `SELECT person.id, person.first_name, person.last_name, person.email, person.born, person.score, person.balance, person.tags,
			place.country "place.country", place.city "place.city", place.telcode "place.telcode"
			FROM person JOIN place ON place.country = person.place_country ORDER BY person.id`)
	})
	tr.Do("Queryx StructScan and SliceScan", func() (any, error) {
		rows, err := db.QueryxContext(ctx, "SELECT * FROM place ORDER BY telcode")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []any
		for i := 0; rows.Next(); i++ {
			if i == 0 {
				var p diffPlace
				err = rows.StructScan(&p)
				out = append(out, p)
			} else {
				var s []any
				s, err = rows.SliceScan()
				out = append(out, s)
			}
			if err != nil {
				return out, err
			}
		}
		return out, rows.Err()
	})
	tr.Do("QueryRowx MapScan of types", func() (any, error) {
		m := map[string]any{}
		err := db.QueryRowxContext(ctx, `SELECT 1.50::numeric AS n, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '{"a":1}'::jsonb AS j,
			ARRAY[1,2] AS arr, '1 day'::interval AS iv, '2024-01-02'::date AS d, NULL::text AS nul, 'x'::bytea AS b`).MapScan(m)
		return m, err
	})

	// In expansion, and Named with In.
	tr.Do("In", func() (any, error) {
		q, args, err := sqlx.In("SELECT email FROM person WHERE id IN (?) AND first_name <> ? ORDER BY id", []int64{1, 2, 3, 99}, "John")
		if err != nil {
			return nil, err
		}
		var emails []string
		return []any{q, emails}, db.SelectContext(ctx, &emails, db.Rebind(q), args...)
	})
	tr.Do("In with empty slice", func() (any, error) {
		_, _, err := sqlx.In("SELECT 1 WHERE 1 IN (?)", []int{})
		return nil, err
	})
	tr.Do("Named and In", func() (any, error) {
		q, args, err := sqlx.Named("SELECT count(*) FROM person WHERE first_name IN (:names) AND score >= :min", map[string]any{"names": []string{"Jason", "Jane", "Ann"}, "min": -10})
		if err != nil {
			return nil, err
		}
		q, args, err = sqlx.In(q, args...)
		if err != nil {
			return nil, err
		}
		var n int
		return n, db.GetContext(ctx, &n, db.Rebind(q), args...)
	})

	// Prepared and named statements, and what preparing checks.
	tr.Do("Preparex and use", func() (any, error) {
		st, err := db.PreparexContext(ctx, "SELECT id, first_name, last_name, email, born, score, balance, tags FROM person WHERE score >= $1 ORDER BY id")
		if err != nil {
			return nil, err
		}
		defer st.Close()
		var ps []diffPerson
		if err := st.SelectContext(ctx, &ps, 0); err != nil {
			return ps, err
		}
		var p diffPerson
		err = st.GetContext(ctx, &p, 1)
		return []any{ps, p}, err
	})
	prepare := func(q string) func() (any, error) {
		return func() (any, error) {
			st, err := db.PreparexContext(ctx, q)
			if err != nil {
				return nil, err
			}
			return "prepared", st.Close()
		}
	}
	tr.Do("Preparex syntax error", prepare("SELEC id FROM person"))
	tr.Do("Preparex unknown column", prepare("SELECT nosuch FROM person WHERE id = $1"))
	tr.Do("Preparex unknown table", prepare("INSERT INTO nosuch VALUES ($1)"))
	tr.Do("Preparex untyped parameter", prepare("SELECT $1"))
	tr.Do("Preparex wrong argument type at Exec", func() (any, error) {
		st, err := db.PreparexContext(ctx, "UPDATE person SET score = $1 WHERE id = $2")
		if err != nil {
			return nil, err
		}
		defer st.Close()
		_, err1 := st.ExecContext(ctx, "not a number", 1)
		r, err2 := st.ExecContext(ctx, 2.5, 1)
		out, err := res(r, err2)
		return []any{difftest.ErrText(err1), out}, err
	})
	tr.Do("PrepareNamed and use", func() (any, error) {
		st, err := db.PrepareNamedContext(ctx, "SELECT id, first_name, last_name, email, born, score, balance, tags FROM person WHERE first_name = :first_name")
		if err != nil {
			return nil, err
		}
		defer st.Close()
		var p diffPerson
		if err := st.GetContext(ctx, &p, map[string]any{"first_name": "Jane"}); err != nil {
			return p, err
		}
		var ps []diffPerson
		err = st.SelectContext(ctx, &ps, diffPerson{First: "John"})
		return []any{p, ps}, err
	})
	tr.Do("PrepareNamed Exec", func() (any, error) {
		st, err := db.PrepareNamedContext(ctx, "UPDATE person SET balance = balance + :delta WHERE email = :email")
		if err != nil {
			return nil, err
		}
		defer st.Close()
		return res(st.ExecContext(ctx, map[string]any{"delta": "1.01", "email": "jc@example.com"}))
	})
	tr.Do("PrepareNamed unknown column", func() (any, error) {
		st, err := db.PrepareNamedContext(ctx, "SELECT * FROM person WHERE nosuch = :x")
		if err != nil {
			return nil, err
		}
		return "prepared", st.Close()
	})
	tr.Do("PrepareNamed missing argument", func() (any, error) {
		st, err := db.PrepareNamedContext(ctx, "SELECT count(*) FROM person WHERE first_name = :name")
		if err != nil {
			return nil, err
		}
		defer st.Close()
		var n int
		return n, st.GetContext(ctx, &n, map[string]any{"other": 1})
	})

	// Transactions.
	tr.Do("Beginx commit", func() (any, error) {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return nil, err
		}
		if _, err := tx.NamedExecContext(ctx, "INSERT INTO place (country, telcode) VALUES (:country, :telcode)", diffPlace{Country: "Singapore", Code: 65}); err != nil {
			tx.Rollback()
			return nil, err
		}
		var n int
		if err := tx.GetContext(ctx, &n, "SELECT count(*) FROM place"); err != nil {
			tx.Rollback()
			return nil, err
		}
		return n, tx.Commit()
	})
	tr.Do("Beginx error then rollback", func() (any, error) {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return nil, err
		}
		_, err1 := tx.ExecContext(ctx, "INSERT INTO place (country, telcode) VALUES ($1, $2)", "Singapore", 65)
		var n int
		err2 := tx.GetContext(ctx, &n, "SELECT count(*) FROM place")
		return []string{difftest.ErrText(err1), difftest.ErrText(err2)}, tx.Rollback()
	})
	tr.Do("Preparex in a transaction", func() (any, error) {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		st, err := tx.PreparexContext(ctx, "DELETE FROM place WHERE telcode = $1")
		if err != nil {
			return nil, err
		}
		out, err := res(st.ExecContext(ctx, 65))
		if err != nil {
			return out, err
		}
		return out, tx.Commit()
	})
	tr.Do("read-only transaction", func() (any, error) {
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		var countries []string
		if err := tx.SelectContext(ctx, &countries, "SELECT country FROM place ORDER BY country"); err != nil {
			return nil, err
		}
		_, werr := tx.ExecContext(ctx, "DELETE FROM place")
		return []any{countries, difftest.ErrText(werr)}, nil
	})
	tr.Do("final state", func() (any, error) {
		var ps []diffPerson
		return ps, db.SelectContext(ctx, &ps, "SELECT id, first_name, last_name, email, born, score, balance, tags FROM person ORDER BY id")
	})
}

// TestDiffPgxStdlib runs the sqlx workload through pgx stdlib on the primary
// and through pgwait on the primary and the replica, and compares.
func TestDiffPgxStdlib(t *testing.T) {
	require.NoError(t, difftest.Run(t, difftest.Options{Name: "sqlx"}, sqlxWorkload))
}
