package pgwaitgrpc_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/pgwait/pgwait"
	"github.com/pgwait/pgwait/pgwaitgrpc"
)

// writer stands in for a service whose handler writes to the database with
// the call's context, which advances the call's token to the commit.
type writer struct {
	healthpb.UnimplementedHealthServer
}

func (writer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	tok := pgwait.TokenFrom(ctx)
	fmt.Println("server: reads wait for", tok.LSN())
	tok.Advance(tok.LSN() + 0x100) // db.ExecContext(ctx, "INSERT ...") does this
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// The server's interceptors put the client's token into each call's
// context and send it back advanced; the client's carry it both ways.
func Example() {
	ln := bufconn.Listen(1 << 20) // in-memory; a net.Listener in production
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(pgwaitgrpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(pgwaitgrpc.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(srv, writer{})
	go srv.Serve(ln)
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(pgwaitgrpc.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(pgwaitgrpc.StreamClientInterceptor()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	tok := pgwait.NewToken(0x3000060) // e.g. from the user's session
	ctx := pgwait.WithToken(context.Background(), tok)
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("client: token now", tok)
	// Output:
	// server: reads wait for 0/3000060
	// client: token now 0/3000160
}
