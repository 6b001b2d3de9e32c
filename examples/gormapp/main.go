// Command gormapp shows pgwait under GORM: gorm.io/driver/postgres opens its
// *sql.DB with the "pgwait" driver, and GORM's reads go to the replica while
// its writes go to the primary, without a stale read. It starts a local
// PostgreSQL 19 primary and replica, migrates a model, then creates a row and
// finds it at once, many times over, and prints how many finds missed their
// row (none) and where pgwait sent the reads.
//
//	go -C examples run ./gormapp
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/examples/internal/localpg"
)

// Order is the model the example creates and finds.
type Order struct {
	ID        uint `gorm:"primaryKey"`
	Customer  string
	Total     int64
	CreatedAt time.Time
}

// rounds is how many orders the example creates and finds back.
const rounds = 200

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gormapp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	cluster, dsn, err := localpg.Start(ctx, out, "")
	if err != nil {
		return err
	}
	defer cluster.Close()

	// DriverName makes GORM's postgres dialector open its *sql.DB with
	// sql.Open("pgwait", dsn): everything else is plain GORM.
	db, err := gorm.Open(postgres.New(postgres.Config{DriverName: "pgwait", DSN: dsn}),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	db = db.WithContext(ctx)

	if err := db.AutoMigrate(&Order{}); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n%d rounds of db.Create(&order) then db.First(&found, order.ID):\n", rounds)
	stale := 0
	start := time.Now()
	for i := range rounds {
		order := Order{Customer: fmt.Sprintf("customer-%d", i), Total: int64(100 + i)}
		if err := db.Create(&order).Error; err != nil {
			return err
		}
		var found Order
		err := db.First(&found, order.ID).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			stale++
		case err != nil:
			return err
		case found.Customer != order.Customer:
			return fmt.Errorf("order %d: found customer %q, want %q", order.ID, found.Customer, order.Customer)
		}
	}
	fmt.Fprintf(out, "  %d/%d finds missed their order, in %v\n", stale, rounds, time.Since(start).Round(time.Millisecond))

	var count int64
	if err := db.Model(&Order{}).Count(&count).Error; err != nil {
		return err
	}
	fmt.Fprintf(out, "  the replica counts %d orders\n", count)

	st, err := pgwaitdriver.StatsOf(ctx, sqlDB)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\npgwait: %d writes, %d reads on the replica, %d on the primary; %d waited, %d needed no wait, %d timed out\n",
		st.Writes, st.ReplicaReads, st.PrimaryReads, st.Waits, st.WaitsSkipped, st.WaitTimeouts)
	switch {
	case stale != 0:
		return fmt.Errorf("%d stale reads", stale)
	case count != rounds:
		return fmt.Errorf("counted %d orders, want %d", count, rounds)
	case st.ReplicaReads < rounds:
		return fmt.Errorf("only %d reads went to the replica", st.ReplicaReads)
	}
	return nil
}
