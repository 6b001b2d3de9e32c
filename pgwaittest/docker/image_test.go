package docker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"github.com/pgwait/pgwait/pgwaittest/docker"
)

// TestImageLikeOfficial runs the image the way the official postgres image's
// documentation says to (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
// PGDATA, /docker-entrypoint-initdb.d/, `docker-entrypoint.sh postgres
// -c ...`), and checks what it documents. pgwaittest/docker does not use any
// of it, but users of scripts/postgres19-image's image in place of the
// official one may; against the official image the test passes too.
func TestImageLikeOfficial(t *testing.T) {
	t.Parallel()
	image := os.Getenv(docker.ImageEnv)
	if image == "" {
		image = docker.DefaultImage
	}
	pool, err := dockertest.NewPool("")
	if err == nil {
		err = pool.Client.Ping()
	}
	if err != nil {
		if docker.Required() {
			t.Fatal(err)
		}
		t.Skipf("no Docker engine: %v", err)
	}
	if _, err := pool.Client.InspectImage(image); err != nil {
		t.Fatalf("image %s: %v", image, err)
	}

	initdb := t.TempDir()
	files := map[string]string{
		"01-schema.sql": "CREATE TABLE greeting (who text);\nINSERT INTO greeting VALUES ('sql');\n",
		// Sourced (not executable): the environment and psql are there.
		"02-data.sh":     `psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -c "INSERT INTO greeting VALUES ('sh as $(id -un) in $POSTGRES_DB')"` + "\n",
		"03-ignored.txt": "not run\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(initdb, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(initdb, 0o755); err != nil {
		t.Fatal(err)
	}

	repo, tag := image, "latest"
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, tag = image[:i], image[i+1:]
	}
	host, _ := os.Hostname()
	r, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository: repo,
		Tag:        tag,
		Env: []string{
			"POSTGRES_USER=app", "POSTGRES_PASSWORD=s3cret", "POSTGRES_DB=appdb",
			"PGDATA=/var/lib/postgresql/custom",
		},
		Cmd:          []string{"postgres", "-c", "max_connections=42"},
		Mounts:       []string{initdb + ":/docker-entrypoint-initdb.d:ro"},
		ExposedPorts: []string{"5432/tcp"},
		// Reap's labels, so that a killed run's container goes too.
		Labels: map[string]string{
			"org.pgwait.pgwaittest":      "image-" + fmt.Sprint(time.Now().UnixNano()),
			"org.pgwait.pgwaittest.host": host,
			"org.pgwait.pgwaittest.pid":  fmt.Sprint(os.Getpid()),
		},
	}, func(hc *dc.HostConfig) {
		hc.PortBindings = map[dc.Port][]dc.PortBinding{"5432/tcp": {{HostIP: "127.0.0.1"}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var out strings.Builder
			_ = pool.Client.Logs(dc.LogsOptions{Container: r.Container.ID, OutputStream: &out, ErrorStream: &out, Stdout: true, Stderr: true, Tail: "40"})
			t.Log(out.String())
		}
		if err := pool.Purge(r); err != nil {
			t.Error(err)
		}
	})

	addr := r.GetHostPort("5432/tcp")
	connString := func(password string) string {
		h, p, _ := strings.Cut(addr, ":")
		return fmt.Sprintf("host=%s port=%s user=app password=%s dbname=appdb sslmode=disable connect_timeout=5", h, p, password)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var conn *pgx.Conn
	for {
		// The entrypoint's temporary server listens on its socket only, so
		// the first TCP connection is the real server's.
		if conn, err = pgx.Connect(ctx, connString("s3cret")); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the server did not accept app's connection: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer conn.Close(context.Background())

	var user, db, dataDir, maxConns string
	if err := conn.QueryRow(ctx, "SELECT current_user, current_database(), current_setting('data_directory'), current_setting('max_connections')").Scan(&user, &db, &dataDir, &maxConns); err != nil {
		t.Fatal(err)
	}
	if user != "app" || db != "appdb" || dataDir != "/var/lib/postgresql/custom" || maxConns != "42" {
		t.Errorf("user %s, database %s, data directory %s, max_connections %s; want app, appdb, /var/lib/postgresql/custom, 42", user, db, dataDir, maxConns)
	}
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'").Scan(&super); err != nil || !super {
		t.Errorf("POSTGRES_USER is not a superuser: %v, %v", super, err)
	}
	rows, err := conn.Query(ctx, "SELECT who FROM greeting ORDER BY who DESC")
	if err != nil {
		t.Fatal(err)
	}
	who, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(who, "|") != "sql|sh as postgres in appdb" {
		t.Errorf("rows from /docker-entrypoint-initdb.d/: %q; want the .sql's, then the .sh's (run as postgres)", who)
	}
	if c, err := pgx.Connect(ctx, connString("wrong")); err == nil {
		c.Close(ctx)
		t.Error("a wrong password was accepted: host connections must need the password")
	}
}
