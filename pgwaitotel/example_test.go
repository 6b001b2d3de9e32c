package pgwaitotel_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaitotel"
	"github.com/pgwait/pgwait/pgwaittest"
)

// Register the handle's instruments on a meter, and the wait histogram as
// the handle's tracer. Here a ManualReader collects once; in production the
// meter provider's exporter does.
func ExampleRegister() {
	ctx := context.Background()
	pair, err := pgwaittest.Start(ctx) // a local primary and replica; use your own DSN
	if err != nil {
		log.Fatal(err)
	}
	defer pair.Close()

	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("pgwait")

	cfg, err := pgwait.ParseConfig(pair.DSN())
	if err != nil {
		log.Fatal(err)
	}
	if cfg.Tracer, err = pgwaitotel.NewWaitTracer(meter); err != nil {
		log.Fatal(err)
	}
	connector, err := driver.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	reg, err := pgwaitotel.Register(meter, connector)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()

	db.ExecContext(ctx, "CREATE TABLE t (id int)")
	db.ExecContext(ctx, "INSERT INTO t VALUES (1)")
	db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(new(int))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch m.Name {
		case "pgwait.writes", "pgwait.reads":
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				role, _ := p.Attributes.Value("pgwait.server.role")
				fmt.Printf("%s %s %d %s\n", m.Name, role.Emit(), p.Value, m.Unit)
			}
		}
	}
	// Unordered output:
	// pgwait.writes  2 {statement}
	// pgwait.reads primary 0 {read}
	// pgwait.reads replica 1 {read}
}
