package gormcompat_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/compat/internal/compattest"
	_ "github.com/pgwait/pgwait/driver"
)

func TestMain(m *testing.M) { os.Exit(compattest.Main(m)) }

type Author struct {
	ID    uint
	Name  string `gorm:"uniqueIndex;not null"`
	Books []Book
}

type Book struct {
	ID       uint
	AuthorID uint `gorm:"index"`
	Title    string
}

// open opens GORM on pgwait, the way the README tells users to, with the
// tables migrated, and returns the *sql.DB beneath for pgwait's statistics.
func open(t *testing.T) (*gorm.DB, *sql.DB) {
	t.Helper()
	db, err := gorm.Open(postgres.New(postgres.Config{DriverName: "pgwait", DSN: compattest.DSN(t)}), &gorm.Config{
		TranslateError: true,
		Logger:         logger.Default.LogMode(logger.Silent),
	})
	require.NoError(t, err)
	sqlDB, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { sqlDB.Close() })
	db = db.WithContext(compattest.Ctx(t))
	require.NoError(t, db.AutoMigrate(&Author{}, &Book{}))
	return db, sqlDB
}

func TestReplicaLags(t *testing.T) { compattest.RequireReplicaLags(t) }

// AutoMigrate's DDL runs on the primary, and the migrator's catalog reads,
// sent to the replica, see it at once.
func TestAutoMigrate(t *testing.T) {
	db, sqlDB := open(t)
	type Gadget struct {
		ID    uint
		Label string `gorm:"size:64;index"`
	}
	table := compattest.Name("gadgets")
	m := db.Table(table).Migrator()

	before := compattest.Stats(t, sqlDB)
	require.False(t, m.HasTable(table))
	require.NoError(t, db.Table(table).AutoMigrate(&Gadget{}))
	// Read right after the CREATE TABLE: the replica must have replayed it.
	require.True(t, m.HasTable(table), "the replica does not see the table AutoMigrate just created")
	require.True(t, m.HasColumn(&Gadget{}, "label"))
	require.True(t, m.HasIndex(&Gadget{}, "idx_"+table+"_label"))

	// A second AutoMigrate adds a column; the migrator sees it at once.
	type Gadget2 struct {
		ID    uint
		Label string `gorm:"size:64;index"`
		Price int
	}
	require.NoError(t, db.Table(table).AutoMigrate(&Gadget2{}))
	require.True(t, db.Table(table).Migrator().HasColumn(&Gadget2{}, "price"), "the replica does not see the column AutoMigrate just added")

	d := compattest.Sub(compattest.Stats(t, sqlDB), before)
	t.Logf("pgwait stats: %+v", d)
	require.Positive(t, d.Writes, "DDL captured on the primary")
	require.Positive(t, d.ReplicaReads, "catalog reads served by the replica")
	require.Positive(t, d.Waits, "catalog reads waited for the DDL")
}

// Create then First at once, compattest.Loops times: never stale, every read
// on the replica.
func TestCreateThenFind(t *testing.T) {
	db, sqlDB := open(t)
	before := compattest.Stats(t, sqlDB)
	stale := 0
	for range compattest.Loops {
		a := Author{Name: compattest.Name(t.Name())}
		require.NoError(t, db.Create(&a).Error)
		require.NotZero(t, a.ID, "RETURNING id came back")
		var got Author
		err := db.First(&got, a.ID).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			stale++
			continue
		}
		require.NoError(t, err)
		require.Equal(t, a.Name, got.Name)

		// An update, read back at once, too.
		require.NoError(t, db.Model(&got).Update("name", got.Name+"!").Error)
		var again Author
		require.NoError(t, db.Where("id = ?", a.ID).Take(&again).Error)
		if again.Name != a.Name+"!" {
			stale++
		}
	}
	require.Zero(t, stale, "stale reads")
	compattest.RequireReplicaRYW(t, compattest.Sub(compattest.Stats(t, sqlDB), before), 2*compattest.Loops)
}

// Has-many with Preload: the author and its books (one INSERT each, in GORM's
// transaction) are read back at once by two replica queries.
func TestPreloadHasMany(t *testing.T) {
	db, sqlDB := open(t)
	const n = 50
	before := compattest.Stats(t, sqlDB)
	for i := range n {
		a := Author{Name: compattest.Name(t.Name()), Books: []Book{{Title: "one"}, {Title: "two"}, {Title: "three"}}}
		require.NoError(t, db.Create(&a).Error)
		var got Author
		require.NoError(t, db.Preload("Books", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&got, a.ID).Error)
		require.Len(t, got.Books, 3, "round %d: books missing", i)
		require.Equal(t, "three", got.Books[2].Title)

		// Append one through the association API, read it back at once.
		require.NoError(t, db.Model(&got).Association("Books").Append(&Book{Title: "four"}))
		require.EqualValues(t, 4, db.Model(&got).Association("Books").Count())
	}
	d := compattest.Sub(compattest.Stats(t, sqlDB), before)
	// Each round: Preload's two SELECTs and Count's one read.
	compattest.RequireReplicaRYW(t, d, n)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(3*n))
}

// db.Transaction runs on the primary (its reads see its own uncommitted
// rows), nested transactions use savepoints, and the committed result is read
// from the replica at once.
func TestTransaction(t *testing.T) {
	db, sqlDB := open(t)
	for range 20 {
		name := compattest.Name(t.Name())
		var id uint
		err := db.Transaction(func(tx *gorm.DB) error {
			a := Author{Name: name}
			if err := tx.Create(&a).Error; err != nil {
				return err
			}
			id = a.ID
			// Inside the transaction: the primary, which sees the row.
			var inRecovery bool
			if err := tx.Raw("SELECT pg_is_in_recovery()").Scan(&inRecovery).Error; err != nil {
				return err
			}
			if inRecovery {
				return errors.New("a read-write transaction ran on the replica")
			}
			var n int64
			if err := tx.Model(&Author{}).Where("id = ?", a.ID).Count(&n).Error; err != nil || n != 1 {
				return fmt.Errorf("transaction does not see its own row: n=%d err=%v", n, err)
			}
			// A nested transaction that fails rolls back to its savepoint only.
			nested := tx.Transaction(func(tx2 *gorm.DB) error {
				if err := tx2.Create(&Book{AuthorID: a.ID, Title: "discarded"}).Error; err != nil {
					return err
				}
				return errors.New("roll me back")
			})
			if nested == nil {
				return errors.New("nested transaction did not fail")
			}
			return tx.Create(&Book{AuthorID: a.ID, Title: "kept"}).Error
		})
		require.NoError(t, err)

		before := compattest.Stats(t, sqlDB)
		var got Author
		require.NoError(t, db.Preload("Books").First(&got, id).Error, "committed author not visible at once")
		require.Len(t, got.Books, 1)
		require.Equal(t, "kept", got.Books[0].Title)
		d := compattest.Sub(compattest.Stats(t, sqlDB), before)
		require.EqualValues(t, 2, d.ReplicaReads)
		require.Zero(t, d.PrimaryReads)
	}

	// A failing transaction leaves nothing behind.
	name := compattest.Name("rolled-back")
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&Author{Name: name}).Error; err != nil {
			return err
		}
		return errors.New("abort")
	})
	require.EqualError(t, err, "abort")
	var n int64
	require.NoError(t, db.Model(&Author{}).Where("name = ?", name).Count(&n).Error)
	require.Zero(t, n)

	// A read-only transaction runs on the replica, after waiting for the
	// handle's writes.
	a := Author{Name: compattest.Name("ro")}
	require.NoError(t, db.Create(&a).Error)
	err = db.Transaction(func(tx *gorm.DB) error {
		var inRecovery bool
		if err := tx.Raw("SELECT pg_is_in_recovery()").Scan(&inRecovery).Error; err != nil {
			return err
		}
		if !inRecovery {
			return errors.New("a read-only transaction ran on the primary")
		}
		var got Author
		return tx.First(&got, a.ID).Error
	}, &sql.TxOptions{ReadOnly: true})
	require.NoError(t, err, "read-only transaction on the replica misses the write before it")
}

// TranslateError maps the unique violation pgwait returns, as the bare
// *pgconn.PgError GORM's dialector looks for, to gorm.ErrDuplicatedKey.
func TestTranslateErrorDuplicatedKey(t *testing.T) {
	db, _ := open(t)
	name := compattest.Name(t.Name())
	require.NoError(t, db.Create(&Author{Name: name}).Error)
	err := db.Create(&Author{Name: name}).Error
	require.ErrorIs(t, err, gorm.ErrDuplicatedKey)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.Code)

	// The same inside a transaction.
	err = db.Transaction(func(tx *gorm.DB) error { return tx.Create(&Author{Name: name}).Error })
	require.ErrorIs(t, err, gorm.ErrDuplicatedKey)

	// And a foreign key violation, for good measure, is not mistaken for it.
	err = db.Exec("INSERT INTO authors (id, name) VALUES (NULL, 'x')").Error
	require.Error(t, err)
	require.NotErrorIs(t, err, gorm.ErrDuplicatedKey)
}

// SELECT ... FOR UPDATE (clause.Locking) goes to the primary; the same query
// without the lock goes to the replica.
func TestLockingGoesToPrimary(t *testing.T) {
	db, sqlDB := open(t)
	a := Author{Name: compattest.Name(t.Name())}
	require.NoError(t, db.Create(&a).Error)

	before := compattest.Stats(t, sqlDB)
	var got Author
	require.NoError(t, db.Clauses(clause.Locking{Strength: "UPDATE"}).First(&got, a.ID).Error)
	require.Equal(t, a.Name, got.Name)
	d := compattest.Sub(compattest.Stats(t, sqlDB), before)
	// pgwait counts a locking SELECT as a write: outside a transaction it
	// commits row locks, and its LSN is captured like any write's.
	require.EqualValues(t, 1, d.Writes, "FOR UPDATE run (and captured) on the primary")
	require.Zero(t, d.ReplicaReads, "FOR UPDATE must not reach the replica")

	// Which server ran it, asked of the server itself.
	var inRecovery bool
	require.NoError(t, db.Model(&Author{}).Select("pg_is_in_recovery()").
		Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", a.ID).Scan(&inRecovery).Error)
	require.False(t, inRecovery, "SELECT ... FOR UPDATE ran on the replica")
	require.NoError(t, db.Model(&Author{}).Select("pg_is_in_recovery()").
		Clauses(clause.Locking{Strength: "SHARE"}).Where("id = ?", a.ID).Scan(&inRecovery).Error)
	require.False(t, inRecovery, "SELECT ... FOR SHARE ran on the replica")
	require.NoError(t, db.Model(&Author{}).Select("pg_is_in_recovery()").
		Where("id = ?", a.ID).Scan(&inRecovery).Error)
	require.True(t, inRecovery, "a plain SELECT ran on the primary")

	// Locking inside a transaction, the usual way: the primary, and the lock
	// holds until commit.
	err := db.Transaction(func(tx *gorm.DB) error {
		var locked Author
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&locked, a.ID).Error; err != nil {
			return err
		}
		return tx.Model(&locked).Update("name", locked.Name+"-locked").Error
	})
	require.NoError(t, err)
	require.NoError(t, db.First(&got, a.ID).Error)
	require.Equal(t, a.Name+"-locked", got.Name)
}

// Several goroutines create then find at once, on as many pooled
// connections: a write on one connection is waited for by reads on others.
func TestConcurrentCreateThenFind(t *testing.T) {
	db, sqlDB := open(t)
	sqlDB.SetMaxOpenConns(4)
	const workers, rounds = 4, compattest.Loops / 4
	before := compattest.Stats(t, sqlDB)
	var stale atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range rounds {
				a := Author{Name: compattest.Name(t.Name())}
				if err := db.Create(&a).Error; err != nil {
					errs <- err
					return
				}
				var got Author
				err := db.First(&got, a.ID).Error
				if errors.Is(err, gorm.ErrRecordNotFound) {
					stale.Add(1)
				} else if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, stale.Load(), "stale reads")
	d := compattest.Sub(compattest.Stats(t, sqlDB), before)
	compattest.RequireReplicaRYW(t, d, workers*rounds)
	require.Greater(t, sqlDB.Stats().MaxOpenConnections, 1)
}

// PrepareStmt (GORM's statement cache over *sql.Stmt) and
// SkipDefaultTransaction (INSERT ... RETURNING sent alone through Query):
// still read-your-writes on the replica, in and out of transactions.
func TestPrepareStmtSkipDefaultTransaction(t *testing.T) {
	base, sqlDB := open(t)
	db := base.Session(&gorm.Session{PrepareStmt: true, SkipDefaultTransaction: true})
	const n = 50
	before := compattest.Stats(t, sqlDB)
	for i := range n {
		a := Author{Name: compattest.Name(t.Name())}
		require.NoError(t, db.Create(&a).Error)
		var got Author
		require.NoError(t, db.First(&got, a.ID).Error, "round %d: row not visible at once", i)
		require.Equal(t, a.Name, got.Name)
	}
	compattest.RequireReplicaRYW(t, compattest.Sub(compattest.Stats(t, sqlDB), before), n)

	var id uint
	require.NoError(t, db.Transaction(func(tx *gorm.DB) error {
		a := Author{Name: compattest.Name(t.Name())}
		if err := tx.Create(&a).Error; err != nil {
			return err
		}
		id = a.ID
		return tx.First(&Author{}, a.ID).Error
	}))
	require.NoError(t, db.First(&Author{}, id).Error)
}

// A pgwait.Token carried in the context GORM passes down makes a second,
// unrelated handle (another service, say) wait for the first one's writes.
func TestTokenAcrossHandles(t *testing.T) {
	writer, _ := open(t)
	reader, readerDB := open(t)
	ctx := compattest.Ctx(t)
	const n = 50
	before := compattest.Stats(t, readerDB)
	for i := range n {
		tok := pgwait.NewToken(0)
		a := Author{Name: compattest.Name(t.Name())}
		require.NoError(t, writer.WithContext(pgwait.WithToken(ctx, tok)).Create(&a).Error)
		require.NotZero(t, tok.LSN(), "the write did not advance the token")

		// The token crosses to the other handle as a string (a header, a
		// cookie...).
		tok2, err := pgwait.ParseToken(tok.String())
		require.NoError(t, err)
		var got Author
		require.NoError(t, reader.WithContext(pgwait.WithToken(ctx, tok2)).First(&got, a.ID).Error,
			"round %d: the other handle does not see the write its token names", i)
	}
	d := compattest.Sub(compattest.Stats(t, readerDB), before)
	t.Logf("reader's pgwait stats: %+v", d)
	require.GreaterOrEqual(t, d.ReplicaReads, uint64(n))
	require.Zero(t, d.PrimaryReads)
	require.Zero(t, d.Fallbacks)
	require.Zero(t, d.Writes, "the reader wrote nothing")
}
