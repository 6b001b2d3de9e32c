package pgwaitgrpc_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaitgrpc"
	"github.com/pgwait/pgwait/pgwaittest"
)

const lsn = pgwait.LSN(0x16B374D848)

// service stands in for an application's: its "service" names what Check
// and Watch do. Without a database, "write" advances the call's token as a
// write would, and "seen" reports the token the handler got in the status'
// message... through seen.
type service struct {
	healthpb.UnimplementedHealthServer
	db   *sql.DB
	seen chan string // the handler's token, when not nil
}

func (s *service) do(ctx context.Context, what string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	if s.seen != nil {
		s.seen <- pgwait.TokenFrom(ctx).String()
	}
	switch {
	case what == "write" && s.db == nil:
		pgwait.TokenFrom(ctx).Advance(lsn)
	case what == "write":
		if _, err := s.db.ExecContext(ctx, "INSERT INTO items VALUES (1)"); err != nil {
			return 0, err
		}
	case what == "read":
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
			return 0, err
		}
		if n == 0 {
			return healthpb.HealthCheckResponse_NOT_SERVING, nil
		}
	}
	return healthpb.HealthCheckResponse_SERVING, nil
}

func (s *service) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st, err := s.do(ctx, req.Service)
	if err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

func (s *service) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	st, err := s.do(stream.Context(), req.Service)
	if err != nil {
		return err
	}
	return stream.Send(&healthpb.HealthCheckResponse{Status: st})
}

// start serves svc behind the server interceptors and returns a client
// behind the client interceptors, both with opts.
func start(t *testing.T, svc *service, opts ...pgwaitgrpc.Option) healthpb.HealthClient {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(pgwaitgrpc.UnaryServerInterceptor(opts...)),
		grpc.ChainStreamInterceptor(pgwaitgrpc.StreamServerInterceptor(opts...)))
	healthpb.RegisterHealthServer(srv, svc)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(pgwaitgrpc.UnaryClientInterceptor(opts...)),
		grpc.WithChainStreamInterceptor(pgwaitgrpc.StreamClientInterceptor(opts...)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// watch runs Watch to its end and returns the first status.
func watch(ctx context.Context, c healthpb.HealthClient, what string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	stream, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: what})
	if err != nil {
		return 0, err
	}
	first, err := stream.Recv()
	if err != nil {
		return 0, err
	}
	if _, err := stream.Recv(); err != io.EOF {
		return 0, err
	}
	return first.Status, nil
}

func TestRoundTrip(t *testing.T) {
	for _, kind := range []string{"unary", "stream"} {
		t.Run(kind, func(t *testing.T) {
			svc := &service{seen: make(chan string, 1)}
			c := start(t, svc)
			call := func(ctx context.Context, what string) error {
				if kind == "unary" {
					_, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: what})
					return err
				}
				_, err := watch(ctx, c, what)
				return err
			}
			tests := []struct {
				name     string
				tok      *pgwait.Token
				what     string
				wantSeen string
				wantTok  string
			}{
				{"empty token, a write", new(pgwait.Token), "write", "", pgwait.NewToken(lsn).String()},
				{"a token, a read", pgwait.NewToken(0x3000060), "", "0/3000060", "0/3000060"},
				{"a token, a write", pgwait.NewToken(0x3000060), "write", "0/3000060", pgwait.NewToken(lsn).String()},
				{"no token in the context", nil, "write", "", ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ctx := t.Context()
					if tt.tok != nil {
						ctx = pgwait.WithToken(ctx, tt.tok)
					}
					if err := call(ctx, tt.what); err != nil {
						t.Fatal(err)
					}
					if seen := <-svc.seen; seen != tt.wantSeen {
						t.Errorf("handler's token %q, want %q", seen, tt.wantSeen)
					}
					if got := tt.tok.String(); got != tt.wantTok {
						t.Errorf("caller's token after %q, want %q", got, tt.wantTok)
					}
				})
			}
		})
	}
}

func TestRefusedTokens(t *testing.T) {
	refuse := pgwaitgrpc.WithValidate(func(context.Context, *pgwait.Token) error { return errors.New("not this session's") })
	tests := []struct {
		name string
		raw  string
		opts []pgwaitgrpc.Option
		want string
	}{
		{"garbage", "'; --", nil, "want an LSN"},
		{"too long", strings.Repeat("1", 65), nil, "at most 64"},
		{"a shorter limit", "0/3000060@2", []pgwaitgrpc.Option{pgwaitgrpc.WithMaxLen(8)}, "at most 8"},
		{"refused by validation", "0/3000060", []pgwaitgrpc.Option{refuse}, "not this session's"},
		{"another key", "'; --", []pgwaitgrpc.Option{pgwaitgrpc.WithKey("x-consistency")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &service{seen: make(chan string, 2)}
			c := start(t, svc, tt.opts...)
			// Raw metadata, as a client without the interceptors sends it.
			ctx := metadata.AppendToOutgoingContext(t.Context(), pgwaitgrpc.DefaultKey, tt.raw)
			_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
			_, serr := watch(ctx, c, "")
			for _, err := range []error{err, serr} {
				if tt.want == "" {
					if err != nil {
						t.Errorf("%v, want the key ignored", err)
					}
					continue
				}
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%v, want InvalidArgument with %q", err, tt.want)
				}
			}
			if tt.want != "" && len(svc.seen) != 0 {
				t.Error("the handler ran with a refused token")
			}
		})
	}
}

// TestAgainstServers: over gRPC, a client that carries its token reads its
// write while the replica lags (the read waits for it); a forged token is
// reset, without a wait timeout, and comes back reset.
func TestAgainstServers(t *testing.T) {
	pair := pgwaittest.New(t,
		pgwaittest.WithParam("pgwait_scope", "token"),
		pgwaittest.WithParam("pgwait_wait_timeout", "3s"),
		pgwaittest.WithParam("pgwait_health_interval", "50ms"))
	db := pair.Open(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE items (id int)"); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	c := start(t, &service{db: db})
	for _, kind := range []string{"unary", "stream"} {
		call := func(ctx context.Context, what string) (healthpb.HealthCheckResponse_ServingStatus, error) {
			if kind == "unary" {
				resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: what})
				return resp.GetStatus(), err
			}
			return watch(ctx, c, what)
		}
		if err := pair.PauseReplay(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "TRUNCATE items"); err != nil {
			t.Fatal(err)
		}
		tok := new(pgwait.Token)
		tctx := pgwait.WithToken(ctx, tok)
		if _, err := call(tctx, "write"); err != nil {
			t.Fatal(err)
		}
		if tok.LSN() == 0 {
			t.Fatalf("%s: the client's token did not advance from the trailer", kind)
		}
		time.AfterFunc(300*time.Millisecond, func() { pair.ResumeReplay(context.Background()) })
		if st, err := call(tctx, "read"); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s: read with the token: %v %v, want it to see the write", kind, st, err)
		}
	}

	// A forged token, sent as raw metadata: the driver resets it (one
	// primary round trip, no wait timeout) and the trailer says so.
	var trailer metadata.MD
	forged := metadata.AppendToOutgoingContext(ctx, pgwaitgrpc.DefaultKey, "FFFFFFFF/FFFFFFFF")
	began := time.Now()
	resp, err := c.Check(forged, &healthpb.HealthCheckRequest{Service: "read"}, grpc.Trailer(&trailer))
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("read with a forged token: %v %v", resp, err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("a forged token cost %v", took)
	}
	back := trailer.Get(pgwaitgrpc.DefaultKey)
	if len(back) != 1 || strings.HasPrefix(strings.ToUpper(back[0]), "FFFFFFFF/") {
		t.Errorf("trailer %v: the forged token came back as it was, not reset", back)
	}
}
