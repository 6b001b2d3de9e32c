package buncompat_test

import (
	"database/sql"
	"net/netip"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx", to compare with
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/pgwait/pgwait/compat/internal/compattest"
)

// Kitchen has a column of most types bun users map, arrays and JSON
// included.
type Kitchen struct {
	bun.BaseModel `bun:"table:bun_kitchen"`

	ID      int64 `bun:",pk,autoincrement"`
	Name    string
	At      time.Time  `bun:"type:timestamptz"`
	Local   time.Time  `bun:"type:timestamp"`
	Maybe   *time.Time `bun:"type:timestamptz"`
	Day     time.Time  `bun:"type:date"`
	Blob    []byte
	Doc     map[string]any `bun:"type:jsonb"`
	List    []any          `bun:"type:json"`
	Strings []string       `bun:",array"`
	Ints    []int64        `bun:",array"`
	Floats  []float64      `bun:",array"`
	UUID    string         `bun:"type:uuid"`
	Price   string         `bun:"type:numeric(10,2)"`
	Flag    bool
	Ratio   float64
	Small   int16
	Null    sql.NullString
	Addr    netip.Addr `bun:"type:inet"`
	Span    time.Duration
}

// Every type written through pgwait reads back from the replica at once, and
// exactly as bun over pgx's own database/sql driver (stdlib, "pgx") reads it
// from the primary: pgwait is a drop-in for it.
func TestTypesMatchPgxStdlib(t *testing.T) {
	db, sqldb := open(t)
	ctx := compattest.Ctx(t)
	_, err := db.NewCreateTable().Model((*Kitchen)(nil)).IfNotExists().Exec(ctx)
	require.NoError(t, err)

	plain, err := sql.Open("pgx", compattest.Cluster(t).PrimaryDSN())
	require.NoError(t, err)
	t.Cleanup(func() { plain.Close() })
	stdlibDB := bun.NewDB(plain, pgdialect.New())

	at := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	rows := []*Kitchen{
		{
			Name: compattest.Name("full"), At: at, Local: at, Maybe: &at, Day: at.Truncate(24 * time.Hour),
			Blob: []byte{0, 1, 2, 0xff}, Doc: map[string]any{"a": []any{1.0, "x", nil}, "é": "ü"}, List: []any{"a", 2.0},
			Strings: []string{"a", "b c", `"q"`, ""}, Ints: []int64{1, -2, 1 << 62}, Floats: []float64{0.5, -1e300},
			UUID: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", Price: "12345678.90", Flag: true, Ratio: 3.141592653589793,
			Small: -32768, Null: sql.NullString{String: "x", Valid: true}, Addr: netip.MustParseAddr("192.0.2.1"),
			Span: 90 * time.Minute,
		},
		{
			Name: compattest.Name("empty"), At: time.Unix(0, 0).UTC(), Local: time.Unix(0, 0).UTC(), Day: time.Unix(0, 0).UTC(),
			UUID: "00000000-0000-0000-0000-000000000000", Price: "0.00", Addr: netip.MustParseAddr("::1"),
		},
	}
	before := compattest.Stats(t, sqldb)
	for _, in := range rows {
		_, err := db.NewInsert().Model(in).Exec(ctx)
		require.NoError(t, err)
		viaPgwait, viaStdlib := new(Kitchen), new(Kitchen)
		require.NoError(t, db.NewSelect().Model(viaPgwait).Where("id = ?", in.ID).Scan(ctx), "%s not visible at once", in.Name)
		require.NoError(t, stdlibDB.NewSelect().Model(viaStdlib).Where("id = ?", in.ID).Scan(ctx))
		require.Equal(t, viaStdlib, viaPgwait, "pgwait and pgx stdlib read %s differently", in.Name)
		require.Equal(t, in.Strings, viaPgwait.Strings)
		require.Equal(t, in.Ints, viaPgwait.Ints)
		require.Equal(t, in.Doc, viaPgwait.Doc)
		require.True(t, in.At.Equal(viaPgwait.At))

		var m1, m2 map[string]any
		require.NoError(t, db.NewSelect().Model((*Kitchen)(nil)).Where("id = ?", in.ID).Scan(ctx, &m1))
		require.NoError(t, stdlibDB.NewSelect().Model((*Kitchen)(nil)).Where("id = ?", in.ID).Scan(ctx, &m2))
		require.Equal(t, m2, m1, "pgwait and pgx stdlib scan %s into a map differently", in.Name)
	}
	d := compattest.Sub(compattest.Stats(t, sqldb), before)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(2*len(rows)))
	require.Zero(t, d.PrimaryReads)
}
