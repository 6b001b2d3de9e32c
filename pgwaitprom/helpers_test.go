package pgwaitprom_test

import "github.com/jackc/pgx/v5/pgconn"

func pgconnConfig(host string, port uint16) pgconn.Config {
	return pgconn.Config{Host: host, Port: port}
}
