package gormcompat_test

import (
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pgwait/pgwait/compat/internal/compattest"
)

// Kitchen has a column of most types GORM users map.
type Kitchen struct {
	ID       uint
	Name     string
	At       time.Time       `gorm:"type:timestamptz"`
	Local    time.Time       `gorm:"type:timestamp"`
	Day      time.Time       `gorm:"type:date"`
	Maybe    *time.Time      `gorm:"type:timestamptz"`
	Blob     []byte          `gorm:"type:bytea"`
	Doc      json.RawMessage `gorm:"type:jsonb"`
	Price    string          `gorm:"type:numeric(10,2)"`
	UUID     string          `gorm:"type:uuid"`
	Flag     bool
	Ratio    float64
	Ratio32  float32
	Small    int16
	Big      int64
	Unsigned uint32
	NullStr  sql.NullString
	NullInt  sql.NullInt64
	Tags     string `gorm:"type:text[]"`
	Interval string `gorm:"type:interval"`
	Inet     string `gorm:"type:inet"`
}

// Every type written through pgwait reads back from the replica at once, and
// exactly as pgx's own database/sql driver (stdlib, "pgx") reads it from the
// primary: pgwait is a drop-in for it.
func TestTypesMatchPgxStdlib(t *testing.T) {
	db, sqlDB := open(t)
	require.NoError(t, db.AutoMigrate(&Kitchen{}))
	stdlibDB, err := gorm.Open(postgres.New(postgres.Config{DriverName: "pgx", DSN: compattest.Cluster(t).PrimaryDSN()}),
		&gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	require.NoError(t, err)
	plain, err := stdlibDB.DB()
	require.NoError(t, err)
	t.Cleanup(func() { plain.Close() })

	at := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("X", 5*3600+30*60))
	rows := []Kitchen{
		{
			Name: compattest.Name("full"), At: at, Local: at, Day: at, Maybe: &at,
			Blob: []byte{0, 1, 2, 0xff}, Doc: json.RawMessage(`{"a": [1, 2, {"b": null}], "é": "ü"}`),
			Price: "12345678.90", UUID: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", Flag: true,
			Ratio: 3.141592653589793, Ratio32: 2.5, Small: -32768, Big: -1 << 63, Unsigned: 1<<32 - 1,
			NullStr: sql.NullString{String: "x", Valid: true}, NullInt: sql.NullInt64{Int64: 7, Valid: true},
			Tags: `{a,"b c",NULL}`, Interval: "1 day 02:03:04", Inet: "192.0.2.1/24",
		},
		{
			Name: compattest.Name("empty"), At: time.Unix(0, 0).UTC(), Local: time.Unix(0, 0).UTC(), Day: time.Unix(0, 0).UTC(),
			Blob: []byte{}, Doc: json.RawMessage(`null`), Price: "0.00", UUID: "00000000-0000-0000-0000-000000000000",
			Tags: "{}", Interval: "00:00:00", Inet: "::1",
		},
	}
	before := compattest.Stats(t, sqlDB)
	for _, in := range rows {
		require.NoError(t, db.Create(&in).Error)
		var viaPgwait, viaStdlib Kitchen
		require.NoError(t, db.First(&viaPgwait, in.ID).Error, "%s not visible at once", in.Name)
		require.NoError(t, stdlibDB.First(&viaStdlib, in.ID).Error)
		require.Equal(t, viaStdlib, viaPgwait, "pgwait and pgx stdlib read %s differently", in.Name)
		require.True(t, in.At.Equal(viaPgwait.At))
		require.Equal(t, in.Blob, viaPgwait.Blob)
		require.JSONEq(t, string(in.Doc), string(viaPgwait.Doc))
		require.Equal(t, in.UUID, viaPgwait.UUID)
		require.Equal(t, in.Big, viaPgwait.Big)
		require.Equal(t, in.Unsigned, viaPgwait.Unsigned)

		// Column types, as GORM's migrator and Scan into maps see them.
		var m1, m2 []map[string]any
		require.NoError(t, db.Model(&Kitchen{}).Where("id = ?", in.ID).Find(&m1).Error)
		require.NoError(t, stdlibDB.Model(&Kitchen{}).Where("id = ?", in.ID).Find(&m2).Error)
		require.Equal(t, m2, m1, "pgwait and pgx stdlib scan %s into maps differently", in.Name)
	}
	d := compattest.Sub(compattest.Stats(t, sqlDB), before)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(2*len(rows)))
	require.Zero(t, d.PrimaryReads)

	ct1, err := db.Migrator().ColumnTypes(&Kitchen{})
	require.NoError(t, err)
	ct2, err := stdlibDB.Migrator().ColumnTypes(&Kitchen{})
	require.NoError(t, err)
	require.Len(t, ct1, len(ct2))
	for i := range ct1 {
		require.Equal(t, ct2[i].Name(), ct1[i].Name())
		require.Equal(t, ct2[i].DatabaseTypeName(), ct1[i].DatabaseTypeName(), ct1[i].Name())
		require.Equal(t, ct2[i].ScanType(), ct1[i].ScanType(), ct1[i].Name())
		l1, ok1 := ct1[i].Length()
		l2, ok2 := ct2[i].Length()
		require.Equal(t, []any{l2, ok2}, []any{l1, ok1}, ct1[i].Name())
		p1, s1, ok1 := ct1[i].DecimalSize()
		p2, s2, ok2 := ct2[i].DecimalSize()
		require.Equal(t, []any{p2, s2, ok2}, []any{p1, s1, ok1}, ct1[i].Name())
	}
}
