package pgwaitprom_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/pgwaitprom"
	"github.com/pgwait/pgwait/pgwaittest"
)

// Register one collector per pgwait handle; serve the registry with
// promhttp.HandlerFor as usual.
func ExampleNewCollector() {
	ctx := context.Background()
	pair, err := pgwaittest.Start(ctx) // a local primary and replica; use your own DSN
	if err != nil {
		log.Fatal(err)
	}
	defer pair.Close()
	db, err := sql.Open("pgwait", pair.DSN())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Keep the connector: scrapes then need no connection.
	connector, err := driver.ConnectorOf(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(pgwaitprom.NewCollector(connector, pgwaitprom.WithConstLabels(prometheus.Labels{"db": "app"})))

	db.ExecContext(ctx, "CREATE TABLE t (id int)")
	db.ExecContext(ctx, "INSERT INTO t VALUES (1)")
	db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(new(int))

	mfs, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "pgwait_writes_total", "pgwait_reads_total", "pgwait_replica_up":
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					if l.GetName() != "server" { // a port that changes from run to run
						labels = append(labels, l.GetName()+"="+l.GetValue())
					}
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				fmt.Printf("%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), v)
			}
		}
	}
	// Output:
	// pgwait_reads_total{db=app,role=primary} 0
	// pgwait_reads_total{db=app,role=replica} 1
	// pgwait_replica_up{db=app} 1
	// pgwait_writes_total{db=app} 2
}
