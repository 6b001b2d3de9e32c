// Package pgwaitgrpc carries pgwait consistency tokens over gRPC, in the
// call's metadata, so that a client that wrote through one call reads its
// writes in the next, on whichever server serves it.
//
// On the server, the interceptors read the client's token from the incoming
// metadata key "pgwait-token" into the call's context with pgwait.WithToken
// (reads made with it wait for it, writes advance it), and send the advanced
// token back in the call's trailer:
//
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(pgwaitgrpc.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(pgwaitgrpc.StreamServerInterceptor()))
//
// On the client, the interceptors send the token of the call's context and
// advance it from the trailer:
//
//	conn, err := grpc.NewClient(target, creds,
//		grpc.WithChainUnaryInterceptor(pgwaitgrpc.UnaryClientInterceptor()),
//		grpc.WithChainStreamInterceptor(pgwaitgrpc.StreamClientInterceptor()))
//	ctx = pgwait.WithToken(ctx, tok) // one token per user session
//
// The token goes back in the trailer, not the header, because a call's
// writes can end after its header is sent (a stream's): the client's token
// advances when the call ends. It is a module of its own, so that only
// applications that import it depend on gRPC.
//
// A token's text comes from the client, so it is never trusted: the server
// interceptors refuse one longer than the size limit, one that does not
// parse, or one an optional validation refuses, with codes.InvalidArgument,
// before the handler runs. A token that passes is still checked by the
// driver: one ahead of every position the primary has reached is reset, so a
// forged token costs at most one primary round trip and a read's wait
// timeout (see pgwait's "Tokens" documentation).
package pgwaitgrpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pgwait/pgwait"
)

// Defaults of the interceptors' options.
const (
	// DefaultKey is the metadata key that carries the token, both ways.
	DefaultKey = "pgwait-token"
	// DefaultMaxLen is the longest token text accepted, in bytes: a pgwait
	// token takes at most 28 ("FFFFFFFF/FFFFFFFF@4294967295").
	DefaultMaxLen = 64
)

// An Option configures the interceptors.
type Option func(*config)

type config struct {
	key      string
	maxLen   int
	validate func(context.Context, *pgwait.Token) error
}

// WithKey names the metadata key that carries the token (lower case; gRPC
// keys are case-insensitive). Client and server must agree.
func WithKey(key string) Option {
	return func(c *config) { c.key = key }
}

// WithMaxLen sets the longest token text accepted, in bytes (default
// DefaultMaxLen).
func WithMaxLen(n int) Option {
	return func(c *config) { c.maxLen = n }
}

// WithValidate adds a check of your own, run by the server interceptors on
// every token that parsed, before the handler, with the call's incoming
// context (its peer and metadata): an error refuses the call with
// codes.InvalidArgument. Use it to bind tokens to a session, or to check a
// signature you add to them.
func WithValidate(f func(context.Context, *pgwait.Token) error) Option {
	return func(c *config) { c.validate = f }
}

func configure(opts []Option) *config {
	c := &config{key: DefaultKey, maxLen: DefaultMaxLen}
	for _, o := range opts {
		o(c)
	}
	return c
}

// incoming returns ctx carrying the token of its incoming metadata (an empty
// one without), or a status error with codes.InvalidArgument.
func (c *config) incoming(ctx context.Context) (context.Context, *pgwait.Token, error) {
	var raw string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vs := md.Get(c.key); len(vs) > 0 {
			raw = vs[len(vs)-1]
		}
	}
	if c.maxLen > 0 && len(raw) > c.maxLen {
		return nil, nil, status.Errorf(codes.InvalidArgument, "pgwaitgrpc: %s is %d bytes, at most %d; send the text the last call's %s trailer held, or none", c.key, len(raw), c.maxLen, c.key)
	}
	tok, err := pgwait.ParseToken(raw)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "pgwaitgrpc: %s: %v", c.key, err)
	}
	if c.validate != nil {
		if err := c.validate(ctx, tok); err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "pgwaitgrpc: %s refused: %v", c.key, err)
		}
	}
	return pgwait.WithToken(ctx, tok), tok, nil
}

// trailer returns the metadata that sends tok back, or nil for an empty
// token.
func (c *config) trailer(tok *pgwait.Token) metadata.MD {
	s := tok.String()
	if s == "" {
		return nil
	}
	return metadata.Pairs(c.key, s)
}

// UnaryServerInterceptor returns a server interceptor that carries the token
// of unary calls, as the package documentation describes.
func UnaryServerInterceptor(opts ...Option) grpc.UnaryServerInterceptor {
	c := configure(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, tok, err := c.incoming(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		if md := c.trailer(tok); md != nil {
			// Errors only if the call has ended, which it has not.
			grpc.SetTrailer(ctx, md)
		}
		return resp, err
	}
}

// StreamServerInterceptor returns a server interceptor that carries the
// token of streaming calls, as the package documentation describes.
func StreamServerInterceptor(opts ...Option) grpc.StreamServerInterceptor {
	c := configure(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, tok, err := c.incoming(ss.Context())
		if err != nil {
			return err
		}
		err = handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
		if md := c.trailer(tok); md != nil {
			ss.SetTrailer(md)
		}
		return err
	}
}

// serverStream gives the handler the context that carries the token.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context, carrying the token.
func (s *serverStream) Context() context.Context { return s.ctx }

// outgoing adds ctx's token to its outgoing metadata, unless it is empty or
// the key is already set.
func (c *config) outgoing(ctx context.Context, tok *pgwait.Token) context.Context {
	s := tok.String()
	if s == "" {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(c.key)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, c.key, s)
}

// advance moves tok to the token md carries back, if valid.
func (c *config) advance(tok *pgwait.Token, md metadata.MD) {
	vs := md.Get(c.key)
	if len(vs) == 0 {
		return
	}
	raw := vs[len(vs)-1]
	if c.maxLen > 0 && len(raw) > c.maxLen {
		return
	}
	if back, err := pgwait.ParseToken(raw); err == nil {
		l, tli := back.Position()
		tok.AdvanceOn(tli, l)
	}
}

// UnaryClientInterceptor returns a client interceptor that sends the token
// of a unary call's context (pgwait.TokenFrom) and advances it to the one
// the server's trailer carries back. Calls whose context has no token go as
// they are. The token only moves forward (pgwait.Token.AdvanceOn), so that
// concurrent calls sharing it never move it back: a token the server reset
// as forged stays as it was on the client.
func UnaryClientInterceptor(opts ...Option) grpc.UnaryClientInterceptor {
	c := configure(opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		tok := pgwait.TokenFrom(ctx)
		if tok == nil {
			return invoker(ctx, method, req, reply, cc, callOpts...)
		}
		var trailer metadata.MD
		err := invoker(c.outgoing(ctx, tok), method, req, reply, cc, append(callOpts, grpc.Trailer(&trailer))...)
		c.advance(tok, trailer)
		return err
	}
}

// StreamClientInterceptor returns a client interceptor that sends the token
// of a streaming call's context and advances it to the one the server's
// trailer carries back, when the stream ends (RecvMsg returns an error,
// io.EOF included). Calls whose context has no token go as they are.
func StreamClientInterceptor(opts ...Option) grpc.StreamClientInterceptor {
	c := configure(opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		tok := pgwait.TokenFrom(ctx)
		if tok == nil {
			return streamer(ctx, desc, cc, method, callOpts...)
		}
		cs, err := streamer(c.outgoing(ctx, tok), desc, cc, method, callOpts...)
		if err != nil {
			return nil, err
		}
		return &clientStream{ClientStream: cs, c: c, tok: tok}, nil
	}
}

// clientStream advances the token from the trailer once the stream ends.
type clientStream struct {
	grpc.ClientStream
	c   *config
	tok *pgwait.Token
}

// RecvMsg receives a message; at the stream's end it advances the token.
func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.c.advance(s.tok, s.ClientStream.Trailer())
	}
	return err
}
