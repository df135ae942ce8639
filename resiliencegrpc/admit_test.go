package resiliencegrpc

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
)

// tenantKey keys a server-side quota by the tenant in the metadata.
func tenantKey(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("tenant"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// TestServerAdmitterShared: the server interceptors take any
// ratelimit.Admitter through ratelimit.Enforce; here a quota shared through
// Redis, turning calls away with ResourceExhausted and pushback, and, with
// Redis down and the limiter failing closed, with Unavailable.
func TestServerAdmitterShared(t *testing.T) {
	rs := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialerRetries: 1})
	defer rc.Close()
	lim := redisrate.New(rc, ratelimit.Quota{Name: "tenant", Limit: 2, Window: 2 * time.Hour},
		redisrate.WithMode(redisrate.FailClosed))
	p := ratelimit.Enforce(lim, tenantKey)
	s := &server{unary: failing(0, nil)}
	c := dial(t, start(t, s, grpc.ChainUnaryInterceptor(UnaryServerInterceptor(p))), nil)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "tenant", "acme")
	for range 2 {
		if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	var trailer metadata.MD
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	wantCode(t, err, codes.ResourceExhausted)
	wantPushback(t, trailer) // one request per hour
	wantCalls(t, s, 2)

	rs.Stop()
	_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	wantCalls(t, s, 2)
}
