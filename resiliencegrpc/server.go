package resiliencegrpc

import (
	"context"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// UnaryServerInterceptor returns a server interceptor that runs every
// unary call's handler under policies, composed with resilience.Chain
// (policies[0] is the outermost). It is meant for admission control, a
// rate limit first of all:
//
//	lim := ratelimit.NewKeyed(100, 20) // per client address: 100 calls/s, bursts of 20
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(resiliencegrpc.UnaryServerInterceptor(lim)),
//		grpc.ChainStreamInterceptor(resiliencegrpc.StreamServerInterceptor(lim)))
//
// A quota shared by the replicas of a service, or by the service's HTTP
// ratelimit.Middleware, takes any ratelimit.Admitter (a
// ratelimit/redisrate limiter, say) through ratelimit.Enforce:
//
//	resiliencegrpc.UnaryServerInterceptor(ratelimit.Enforce(redisLimiter, tenantFromMetadata))
//
// An admitter that cannot decide (ratelimit.ErrUnavailable: its store is
// down and it fails closed) turns the call away with Unavailable.
//
// The policies run with a context that describes the call
// (resilience.CallFrom): its Target is the client's address without the
// port, so that keyed policies keep one instance per client by default,
// and its Method the full method name. To key by something else, such as
// a tenant in the metadata, give the keyed policy a key function that
// reads the context (ratelimit.WithKey); bound the length of any key taken
// from metadata, which the client controls. The handler itself runs
// outside that description (resilience.WithoutCall): the outbound calls it
// makes are described by their own adapters, and a bare resilience.Do in
// it runs as outside any call.
//
// A call that a policy turns away before the handler runs fails with the
// status its error maps to (a rate limit: ResourceExhausted; a full
// bulkhead or an open breaker: Unavailable; a timeout: DeadlineExceeded),
// and when the error says when to come back (resilience.RetryAfter), the
// [PushbackTrailer] trailer tells the client, rounded up to the
// millisecond; a resiliencegrpc client waits that long before retrying.
// The handler's own errors are returned as they are.
func UnaryServerInterceptor(policies ...resilience.Policy) grpc.UnaryServerInterceptor {
	p := chain(policies)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if p == nil {
			return handler(ctx, req)
		}
		var (
			resp any
			ran  bool
		)
		err := p.Do(serverCall(ctx, info.FullMethod, false), func(ctx context.Context) error {
			ran = true
			var err error
			resp, err = handler(handlerContext(ctx), req)
			return classify(ctx, err, nil)
		})
		if err != nil && !ran {
			if md := pushbackTrailer(err); md != nil {
				grpc.SetTrailer(ctx, md)
			}
		}
		return resp, toStatus(err)
	}
}

// StreamServerInterceptor returns a server interceptor that runs every
// stream's handler under policies, as [UnaryServerInterceptor] does for
// unary calls. Resources a policy takes, such as a bulkhead's slot, are
// held until the handler returns.
func StreamServerInterceptor(policies ...resilience.Policy) grpc.StreamServerInterceptor {
	p := chain(policies)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if p == nil {
			return handler(srv, ss)
		}
		ran := false
		// gRPC passes no service to a stream handled by an
		// unknown-service handler: its method is the client's to choose.
		err := p.Do(serverCall(ss.Context(), info.FullMethod, srv == nil), func(ctx context.Context) error {
			ran = true
			return classify(ctx, handler(srv, &serverStream{ServerStream: ss, ctx: handlerContext(ctx)}), nil)
		})
		if err != nil && !ran {
			if md := pushbackTrailer(err); md != nil {
				ss.SetTrailer(md)
			}
		}
		return toStatus(err)
	}
}

// serverStream gives the handler the context the policies ran it with.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// serverCall describes an incoming call for the policies. Their telemetry
// records its method but not its target, the client's address, which is
// not bounded (see docs/telemetry.md); with otherMethod, the method is not
// one the server registered and is recorded as "_OTHER".
func serverCall(ctx context.Context, method string, otherMethod bool) context.Context {
	ctx = telemetry.Incoming(ctx, otherMethod)
	return resilience.WithCall(ctx, resilience.Call{Target: peerHost(ctx), Method: method})
}

// handlerContext is the context a handler runs with: the policies'
// deadline and cancellation, without the incoming call's description.
func handlerContext(ctx context.Context) context.Context {
	return telemetry.Outgoing(resilience.WithoutCall(ctx))
}

// peerHost returns the client's address without its port.
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if a, ok := p.Addr.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	s := p.Addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// pushbackTrailer returns the trailer that tells the client when to come
// back after err, or nil if err does not say.
func pushbackTrailer(err error) metadata.MD {
	d, ok := resilience.RetryAfter(err)
	if !ok {
		return nil
	}
	d = min(d, maxPushback)
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return metadata.Pairs(PushbackTrailer, strconv.FormatInt(int64(ms), 10))
}
