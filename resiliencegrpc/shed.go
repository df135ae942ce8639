package resiliencegrpc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/shed"
)

// PriorityMetadata is the metadata key the shedding interceptors read a
// call's priority from by default: "critical", "default" or "sheddable"
// (shed.ParsePriority: any other value, or none, is shed.Default). It is
// the gRPC form of shed.PriorityHeader.
const PriorityMetadata = "resilience-priority"

// The gRPC health service's methods, which the shedding interceptors
// never shed by default.
const (
	healthCheck = "/grpc.health.v1.Health/Check"
	healthWatch = "/grpc.health.v1.Health/Watch"
	healthList  = "/grpc.health.v1.Health/List"
)

// A ShedOption configures [ShedUnaryServerInterceptor] and
// [ShedStreamServerInterceptor].
type ShedOption interface{ applyShed(*shedConfig) }

type shedConfig struct {
	health   func(ctx context.Context, fullMethod string) bool
	priority func(ctx context.Context, fullMethod string) shed.Priority
}

type shedHealthOption func(ctx context.Context, fullMethod string) bool

func (o shedHealthOption) applyShed(c *shedConfig) {
	if o == nil {
		panic("resiliencegrpc: WithShedHealthCheck: f is nil")
	}
	c.health = o
}

// WithShedHealthCheck marks the calls for which f returns true as health
// checks, which are never shed, never wait, and do not count against the
// shedder's bound, even while it drains. It replaces the default, the
// methods of the gRPC health service (grpc.health.v1.Health: Check, Watch
// and List). f runs for every call and must be cheap. The shedding
// interceptors panic if f is nil.
func WithShedHealthCheck(f func(ctx context.Context, fullMethod string) bool) ShedOption {
	return shedHealthOption(f)
}

type shedPriorityOption func(ctx context.Context, fullMethod string) shed.Priority

func (o shedPriorityOption) applyShed(c *shedConfig) {
	if o == nil {
		panic("resiliencegrpc: WithShedPriority: f is nil")
	}
	c.priority = o
}

// WithShedPriority sets how a call's priority is found (default: the
// [PriorityMetadata] metadata, parsed by shed.ParsePriority), for a
// server that ranks calls by method or does not trust its clients. The
// shedding interceptors panic if f is nil.
func WithShedPriority(f func(ctx context.Context, fullMethod string) shed.Priority) ShedOption {
	return shedPriorityOption(f)
}

func isHealthMethod(_ context.Context, m string) bool {
	return m == healthCheck || m == healthWatch || m == healthList
}

// metadataPriority is the default priority: the first PriorityMetadata
// value of the incoming metadata.
func metadataPriority(ctx context.Context, _ string) shed.Priority {
	v := metadata.ValueFromIncomingContext(ctx, PriorityMetadata)
	if len(v) == 0 {
		return shed.Default
	}
	return shed.ParsePriority(v[0])
}

func newShedConfig(s *shed.Shedder, fn string, opts []ShedOption) shedConfig {
	if s == nil {
		panic("resiliencegrpc: " + fn + ": s is nil")
	}
	c := shedConfig{health: isHealthMethod, priority: metadataPriority}
	for _, o := range opts {
		o.applyShed(&c)
	}
	return c
}

// ShedUnaryServerInterceptor returns a server interceptor that runs every
// unary call through the load shedder s (package shed): a call admitted
// runs its handler and releases its slot when the handler returns; a call
// shed fails with Unavailable and the [PushbackTrailer] trailer, in
// milliseconds, from the shedder's Retry-After (at least 1s), and never
// reaches the handler. A resiliencegrpc client retries it after that
// delay (if the method is idempotent), and its pushback gate holds the
// other calls to the server meanwhile. Health checks bypass s (see
// [WithShedHealthCheck]); priorities come from [PriorityMetadata].
//
// Chain it first, before rate limits and idempotency:
//
//	s := shed.New(shed.Fixed(64))
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(resiliencegrpc.ShedUnaryServerInterceptor(s),
//			resiliencegrpc.UnaryServerInterceptor(lim)),
//		grpc.ChainStreamInterceptor(resiliencegrpc.ShedStreamServerInterceptor(s),
//			resiliencegrpc.StreamServerInterceptor(lim)))
//
// The shedder's telemetry records the call's rpc.method, never the
// client's address. It panics if s is nil or an option is invalid.
func ShedUnaryServerInterceptor(s *shed.Shedder, opts ...ShedOption) grpc.UnaryServerInterceptor {
	c := newShedConfig(s, "ShedUnaryServerInterceptor", opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if c.health(ctx, info.FullMethod) {
			return handler(ctx, req)
		}
		release, err := s.Acquire(serverCall(ctx, info.FullMethod, false), c.priority(ctx, info.FullMethod))
		if err != nil {
			md, st := shedStatus(err)
			grpc.SetTrailer(ctx, md)
			return nil, st
		}
		defer release()
		return handler(ctx, req)
	}
}

// ShedStreamServerInterceptor is [ShedUnaryServerInterceptor] for
// streams: a stream admitted holds its slot until its handler returns.
// Long-lived streams (watches, subscriptions) hold a slot all their life:
// protect them with a shedder of their own, or mark them with
// [WithShedHealthCheck] if they must never be shed.
func ShedStreamServerInterceptor(s *shed.Shedder, opts ...ShedOption) grpc.StreamServerInterceptor {
	c := newShedConfig(s, "ShedStreamServerInterceptor", opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		if c.health(ctx, info.FullMethod) {
			return handler(srv, ss)
		}
		// gRPC passes no service to a stream handled by an
		// unknown-service handler: its method is the client's to choose.
		release, err := s.Acquire(serverCall(ctx, info.FullMethod, srv == nil), c.priority(ctx, info.FullMethod))
		if err != nil {
			md, st := shedStatus(err)
			ss.SetTrailer(md)
			return st
		}
		defer release()
		return handler(srv, ss)
	}
}

// shedStatus returns the trailer and status of a call shed with err.
func shedStatus(err error) (metadata.MD, error) {
	d := time.Second
	var re *shed.RejectedError
	if errors.As(err, &re) {
		d = max(re.RetryAfter, time.Second)
	}
	ms := int64((min(d, maxPushback) + time.Millisecond - 1) / time.Millisecond)
	return metadata.Pairs(PushbackTrailer, strconv.FormatInt(ms, 10)), status.Error(codes.Unavailable, err.Error())
}
