package sqlxcompat_test

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait/compat/internal/compattest"
)

// A script of several statements in one Exec, as sqlx's README creates its
// schema (db.MustExec(schema)) and as migration tools run files: it runs on
// the primary, and reads see all of it at once.
func TestMultiStatementScript(t *testing.T) {
	db, err := sqlx.Open("pgwait", compattest.DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx := compattest.Ctx(t)
	table := compattest.Name("script")

	_, err = db.ExecContext(ctx, "CREATE TABLE "+table+" (a int); INSERT INTO "+table+" VALUES (1)")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.GetContext(ctx, &n, "SELECT count(*) FROM "+table), "the replica does not see the script just run")
	require.Equal(t, 1, n)

	tx, err := db.BeginTxx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (2); INSERT INTO "+table+" VALUES (3)")
	require.NoError(t, err, "a script inside a transaction")
	require.NoError(t, tx.Commit())
	require.NoError(t, db.GetContext(ctx, &n, "SELECT count(*) FROM "+table))
	require.Equal(t, 3, n)
}

// sqlx's README, on pgwait: its schema, its transaction, its reads.
func TestReadme(t *testing.T) {
	db, err := sqlx.Open("pgwait", compattest.DSN(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ctx := compattest.Ctx(t)
	person, place := compattest.Name("person"), compattest.Name("place")
	schema := `
CREATE TABLE ` + person + ` (
    first_name text,
    last_name text,
    email text
);

CREATE TABLE ` + place + ` (
    country text,
    city text NULL,
    telcode integer
);

INSERT INTO ` + place + ` (country, telcode) VALUES ('Hong Kong', 852)`
	db.MustExecContext(ctx, schema) // one script, as sqlx's README does

	before := compattest.Stats(t, db.DB)
	var telcode int
	require.NoError(t, db.GetContext(ctx, &telcode, "SELECT telcode FROM "+place+" WHERE country = $1", "Hong Kong"),
		"the replica does not see the schema just created")
	require.Equal(t, 852, telcode)
	var n int
	require.NoError(t, db.GetContext(ctx, &n, "SELECT count(*) FROM "+person))
	require.Zero(t, n)
	d := compattest.Sub(compattest.Stats(t, db.DB), before)
	require.EqualValues(t, 2, d.ReplicaReads)
	require.Zero(t, d.PrimaryReads)

	tx := db.MustBeginTx(ctx, nil)
	tx.MustExecContext(ctx, "INSERT INTO "+person+" (first_name, last_name, email) VALUES ($1, $2, $3)", "Jason", "Moiron", "jmoiron@jmoiron.net")
	tx.MustExecContext(ctx, "INSERT INTO "+person+" (first_name, last_name, email) VALUES ($1, $2, $3)", "John", "Doe", "johndoeDNE@gmail.net")
	tx.MustExecContext(ctx, "INSERT INTO "+place+" (country, city, telcode) VALUES ($1, $2, $3)", "United States", "New York", "1")
	require.NoError(t, tx.Commit())

	type Person struct {
		FirstName string `db:"first_name"`
		LastName  string `db:"last_name"`
		Email     string
	}
	var people []Person
	require.NoError(t, db.SelectContext(ctx, &people, "SELECT * FROM "+person+" ORDER BY first_name ASC"))
	require.Len(t, people, 2, "the replica does not see the transaction just committed")
	require.Equal(t, "Jason", people[0].FirstName)

	// MapScan, as sqlx users do for ad-hoc rows.
	rows, err := db.QueryxContext(ctx, "SELECT country, city, telcode FROM "+place+" ORDER BY telcode")
	require.NoError(t, err)
	defer rows.Close()
	var got []map[string]any
	for rows.Next() {
		m := map[string]any{}
		require.NoError(t, rows.MapScan(m))
		got = append(got, m)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []map[string]any{
		{"country": "United States", "city": "New York", "telcode": int64(1)},
		{"country": "Hong Kong", "city": nil, "telcode": int64(852)},
	}, got)
}
