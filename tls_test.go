package pgwait_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgwait/pgwait"
	pgwaitdriver "github.com/pgwait/pgwait/driver"
	"github.com/pgwait/pgwait/internal/pgtest"
)

// testCA issues server certificates for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM, for sslrootcert
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgwait test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "root.crt")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return &testCA{cert: cert, key: key, file: file}
}

// issue returns a server certificate valid for exactly these names and IP
// addresses.
func (ca *testCA) issue(t *testing.T, serial int64, names []string, ips []net.IP) pgtest.KeyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "pgwait test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pgtest.KeyPair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
	}
}

// outcome is what a connection attempt gave: refused, or connected with
// or without TLS.
type outcome string

func connectOutcome(t *testing.T, cc *pgx.ConnConfig) outcome {
	t.Helper()
	conn, err := pgx.ConnectConfig(t.Context(), cc)
	if err != nil {
		t.Logf("%s: %v", pgwait.Addr(cc), err)
		return "refused"
	}
	defer conn.Close(t.Context())
	var ssl bool
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
	if ssl {
		return "tls"
	}
	return "plaintext"
}

// TestReplicaTLS: issue 9 item 4. Each replica is checked as pgx checks a
// direct connection to it: against its own host name or IP address, with
// prefer's and allow's fallbacks, and with TLS over TCP even when the
// primary is a Unix socket.
func TestReplicaTLS(t *testing.T) {
	ca := newTestCA(t)
	localhost := ca.issue(t, 2, []string{"localhost"}, nil)
	ipOnly := ca.issue(t, 3, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	sock, err := os.MkdirTemp("", "pgwait-sock-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(sock) })
	require.NoError(t, os.Chmod(sock, 0o777)) // the servers may run as another user

	// The primary's certificate is for localhost; replica 0's for
	// 127.0.0.1 only, replica 1's for localhost only, replica 2 has no TLS.
	c := pgtest.New(t, pgtest.Options{
		Replicas:  3,
		ServerTLS: []pgtest.KeyPair{localhost, ipOnly, localhost, {}},
		Settings:  map[string]string{"unix_socket_directories": sock},
	})
	port := func(dsn string) uint16 {
		cc, err := pgx.ParseConfig(dsn)
		require.NoError(t, err)
		return cc.Port
	}
	primary := port(c.PrimaryDSN())
	ipReplica, nameReplica, plainReplica := port(c.ReplicaDSN(0)), port(c.ReplicaDSN(1)), port(c.ReplicaDSN(2))

	tcpPrimary := fmt.Sprintf("host=localhost port=%d", primary)
	socketPrimary := fmt.Sprintf("host=%s port=%d", sock, primary)
	for _, tt := range []struct {
		name    string
		primary string
		sslmode string // "" leaves it out: prefer
		host    string
		port    uint16
		want    outcome
	}{
		{"verify-full: a localhost-only certificate at 127.0.0.1 is refused", tcpPrimary, "verify-full", "127.0.0.1", nameReplica, "refused"},
		{"verify-full: an IP-only certificate at 127.0.0.1 is accepted", tcpPrimary, "verify-full", "127.0.0.1", ipReplica, "tls"},
		{"verify-full: an IP-only certificate at localhost is refused", tcpPrimary, "verify-full", "localhost", ipReplica, "refused"},
		{"verify-full: a localhost certificate at localhost is accepted", tcpPrimary, "verify-full", "localhost", nameReplica, "tls"},
		{"verify-full: a replica without TLS is refused", tcpPrimary, "verify-full", "127.0.0.1", plainReplica, "refused"},
		{"verify-ca: the name is not checked", tcpPrimary, "verify-ca", "127.0.0.1", nameReplica, "tls"},
		{"require: TLS without checks", tcpPrimary, "require", "127.0.0.1", nameReplica, "tls"},
		{"require: a replica without TLS is refused", tcpPrimary, "require", "127.0.0.1", plainReplica, "refused"},
		{"prefer (default): a replica without TLS is used in plaintext", tcpPrimary, "", "127.0.0.1", plainReplica, "plaintext"},
		{"prefer (default): a replica with TLS uses it", tcpPrimary, "", "127.0.0.1", nameReplica, "tls"},
		{"allow: a replica without TLS is used", tcpPrimary, "allow", "127.0.0.1", plainReplica, "plaintext"},
		{"socket primary, verify-full: TCP replica over TLS", socketPrimary, "verify-full", "127.0.0.1", ipReplica, "tls"},
		{"socket primary, verify-full: wrong name refused", socketPrimary, "verify-full", "127.0.0.1", nameReplica, "refused"},
		{"socket primary, verify-full: replica without TLS refused", socketPrimary, "verify-full", "127.0.0.1", plainReplica, "refused"},
		{"socket primary, prefer: replica without TLS used", socketPrimary, "", "127.0.0.1", plainReplica, "plaintext"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			settings := " user=postgres dbname=postgres sslrootcert=" + ca.file
			if tt.sslmode != "" {
				settings += " sslmode=" + tt.sslmode
			}
			// What pgx itself does, connecting to the replica directly.
			direct, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d", tt.host, tt.port) + settings)
			require.NoError(t, err)
			assert.Equal(t, tt.want, connectOutcome(t, direct), "plain pgx")

			replica := net.JoinHostPort(tt.host, fmt.Sprint(tt.port))
			cfg, err := pgwait.ParseConfig(tt.primary + settings + " pgwait_replicas=" + replica)
			require.NoError(t, err)
			require.Len(t, cfg.Replicas, 1)
			assert.Equal(t, tt.want, connectOutcome(t, cfg.Replicas[0]), "pgwait's replica settings")
		})
	}

	// Through the driver: reads reach the replica over verified TLS.
	for _, p := range []string{tcpPrimary, socketPrimary} {
		t.Run("driver, primary "+p, func(t *testing.T) {
			dsn := fmt.Sprintf("%s user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s pgwait_no_replica=error pgwait_replicas=127.0.0.1:%d", p, ca.file, ipReplica)
			db, err := sql.Open("pgwait", dsn)
			require.NoError(t, err)
			defer db.Close()
			var inRecovery, ssl bool
			require.NoError(t, db.QueryRowContext(t.Context(), "SELECT pg_is_in_recovery(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&inRecovery, &ssl))
			assert.True(t, inRecovery, "the replica served the read")
			assert.True(t, ssl, "over TLS")
		})
	}
}

// TestMaxWaitTimeout: issue 9 item 7. A wait timeout of 2^31 ms or more made
// every wait fail with SQLSTATE 22023; MaxWaitTimeout is the largest the
// server takes, and reads wait with it.
func TestMaxWaitTimeout(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ms := pgwait.MaxWaitTimeout.Milliseconds()
	require.NoError(t, pgtest.Exec(t.Context(), c.ReplicaDSN(0), fmt.Sprintf("WAIT FOR LSN '0/1' WITH (TIMEOUT %d, NO_THROW)", ms)))
	err := pgtest.Exec(t.Context(), c.ReplicaDSN(0), fmt.Sprintf("WAIT FOR LSN '0/1' WITH (TIMEOUT %d, NO_THROW)", ms+1))
	require.ErrorContains(t, err, "22023", "the server refuses one millisecond more")

	_, err = pgwait.ParseConfig(c.PrimaryDSN() + " pgwait_wait_timeout=597h")
	require.ErrorContains(t, err, "want a duration from 1ms to 596h31m23.647s")

	replica, err := pgx.ParseConfig(c.ReplicaDSN(0))
	require.NoError(t, err)
	db, err := sql.Open("pgwait", fmt.Sprintf("%s pgwait_on_timeout=error pgwait_wait_method=wait_for_lsn pgwait_wait_timeout=%d pgwait_replicas=%s",
		c.PrimaryDSN(), ms, pgwait.Addr(replica)))
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(t.Context(), "CREATE TABLE max_wait (v int); INSERT INTO max_wait VALUES (1)")
	require.NoError(t, err)
	var v int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT v FROM max_wait").Scan(&v))
	assert.Equal(t, 1, v)
}

// staticDNS answers every name with the same addresses.
type staticDNS []string

func (d staticDNS) LookupHost(context.Context, string) ([]string, error) { return d, nil }

// TestDiscoveryVerifiesTheHostName: replicas that DNS discovery found at
// an address are still checked, under sslmode=verify-full, against the host
// name they were found under: certificates valid for that name only (not
// for the address) are accepted, and reads reach both replicas over TLS.
func TestDiscoveryVerifiesTheHostName(t *testing.T) {
	ca := newTestCA(t)
	localhost := ca.issue(t, 2, []string{"localhost"}, nil)
	fleet := ca.issue(t, 3, []string{"replicas.test"}, nil)
	c := pgtest.New(t, pgtest.Options{Replicas: 2, ServerTLS: []pgtest.KeyPair{localhost, fleet}})
	primary, err := pgx.ParseConfig(c.PrimaryDSN())
	require.NoError(t, err)
	answer := staticDNS{}
	for i := range 2 {
		r, err := pgx.ParseConfig(c.ReplicaDSN(i))
		require.NoError(t, err)
		answer = append(answer, pgwait.Addr(r))
	}
	cfg, err := pgwait.ParseConfig(fmt.Sprintf("host=localhost port=%d user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s pgwait_no_replica=error pgwait_balance=round_robin pgwait_health_interval=50ms pgwait_replicas=replicas.test pgwait_replica_discovery=dns", primary.Port, ca.file))
	require.NoError(t, err)
	cfg.Resolver = answer
	connector, err := pgwaitdriver.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(0) // a new pick per statement
	ports := map[int]bool{}
	require.Eventually(t, func() bool {
		var port int
		var ssl bool
		err := db.QueryRowContext(t.Context(), "SELECT inet_server_port(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&port, &ssl)
		if err == nil && ssl {
			ports[port] = true
		}
		return len(ports) == 2
	}, 10*time.Second, 10*time.Millisecond, "reads reach both replicas over verified TLS; replica status: %+v", connector.Replicas())
	for _, st := range connector.Replicas() {
		// A slow machine may time a probe out; no certificate was refused.
		assert.NotContains(t, fmt.Sprint(st.LastError), "certificate", st.Addr)
		assert.Equal(t, fmt.Sprintf("replicas.test:%d", primary.Port), st.Name, "the name as given, with the primary's port")
	}
}
