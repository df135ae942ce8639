package resiliencegrpc

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

func withKey(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

func TestIdempotencyServerInterceptor(t *testing.T) {
	release := make(chan struct{})
	s := &server{unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		switch string(req.GetPayload().GetBody()) {
		case "missing":
			return nil, status.Errorf(codes.NotFound, "no such thing (%d)", n)
		case "fail":
			return nil, status.Error(codes.Internal, "boom")
		case "slow":
			<-release
		}
		return &testgrpc.SimpleResponse{Payload: payload("reply " + string(rune('0'+n))), Username: "u"}, nil
	}}
	addr := start(t, s, grpc.ChainUnaryInterceptor(IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
	c := dial(t, addr, nil)
	ctx := t.Context()
	call := func(ctx context.Context, body string) (*testgrpc.SimpleResponse, metadata.MD, error) {
		var h metadata.MD
		r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: payload(body)}, grpc.Header(&h))
		return r, h, err
	}

	t.Run("replay", func(t *testing.T) {
		kctx := withKey(ctx, IdempotencyKey, "k-replay")
		first, h1, err := call(kctx, "pay")
		if err != nil {
			t.Fatal(err)
		}
		n := s.n()
		second, h2, err := call(kctx, "pay")
		if err != nil {
			t.Fatal(err)
		}
		if s.n() != n || !proto.Equal(first, second) {
			t.Errorf("repeat: got %v after %d calls, want %v replayed", second, s.n(), first)
		}
		if len(h1[ReplayedMetadata]) != 0 || strings.Join(h2[ReplayedMetadata], ",") != "true" {
			t.Errorf("replay marks: first %v, repeat %v", h1, h2)
		}
		_, _, err = call(kctx, "other")
		wantCode(t, err, codes.FailedPrecondition)
		// Another principal has keys of its own.
		if _, h, err := call(withKey(kctx, "authorization", "Bearer bob"), "pay"); err != nil || len(h[ReplayedMetadata]) != 0 || s.n() != n+1 {
			t.Errorf("another principal: got %v %v after %d calls, want a run of its own", h, err, s.n())
		}
	})
	t.Run("status recorded", func(t *testing.T) {
		kctx := withKey(ctx, IdempotencyKey, "k-missing")
		_, _, err1 := call(kctx, "missing")
		n := s.n()
		_, h, err2 := call(kctx, "missing")
		wantCode(t, err2, codes.NotFound)
		if s.n() != n || status.Convert(err1).Message() != status.Convert(err2).Message() || len(h[ReplayedMetadata]) != 1 {
			t.Errorf("repeat: got %v (%v) after %d calls, want %v replayed", err2, h, s.n(), err1)
		}
	})
	t.Run("server failure released", func(t *testing.T) {
		kctx := withKey(ctx, IdempotencyKey, "k-fail")
		n := s.n()
		call(kctx, "fail")
		_, _, err := call(kctx, "fail")
		wantCode(t, err, codes.Internal)
		if s.n() != n+2 {
			t.Errorf("calls: got %d, want 2 (the failure is not recorded)", s.n()-n)
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		for _, kctx := range []context.Context{
			withKey(ctx, IdempotencyKey, ""),
			withKey(ctx, IdempotencyKey, strings.Repeat("k", 256)),
			withKey(ctx, IdempotencyKey, "a", IdempotencyKey, "b"),
			withKey(ctx, IdempotencyKey, "a b"),
		} {
			_, _, err := call(kctx, "pay")
			wantCode(t, err, codes.InvalidArgument)
		}
	})
	t.Run("in flight", func(t *testing.T) {
		kctx := withKey(ctx, IdempotencyKey, "k-slow")
		var wg sync.WaitGroup
		n := s.n()
		wg.Go(func() { call(kctx, "slow") })
		for s.n() == n { // wait for the first call to reach the handler
			time.Sleep(time.Millisecond)
		}
		var tr metadata.MD
		_, err := c.UnaryCall(kctx, &testgrpc.SimpleRequest{Payload: payload("slow")}, grpc.Trailer(&tr))
		close(release)
		wg.Wait()
		wantCode(t, err, codes.Aborted)
		if got := tr[PushbackTrailer]; len(got) != 1 || got[0] != "1000" {
			t.Errorf("in flight: pushback trailer %q, want 1000 (ms), as the HTTP middleware's Retry-After: 1", got)
		}
	})
}

// keyLogServer fails the first attempt of each call with Unavailable and
// records the idempotency-key metadata of every attempt.
func keyLogServer(t *testing.T) (*server, *[]string, *sync.Mutex) {
	var (
		mu   sync.Mutex
		keys []string
	)
	s := &server{}
	s.unary = func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		mu.Lock()
		keys = append(keys, strings.Join(metadata.ValueFromIncomingContext(ctx, IdempotencyKey), ","))
		mu.Unlock()
		if n%2 == 1 {
			return nil, errUnavailable
		}
		return &testgrpc.SimpleResponse{}, nil
	}
	return s, &keys, &mu
}

func TestKeyerStampsMetadata(t *testing.T) {
	tests := []struct {
		name     string
		policy   resilience.Policy
		opts     []Option
		callerKy string
		want     int // attempts
		stamped  bool
	}{
		{"no keyer", fastRetry(), nil, "", 1, false},
		{"keyer on the method", resilience.Chain(idempotency.NewKeyer([]string{unaryMethod}), fastRetry()), nil, "", 2, true},
		{"keyer on the service", resilience.Chain(idempotency.NewKeyer([]string{allMethods}), fastRetry()), nil, "", 2, true},
		{"keyer on another method", resilience.Chain(idempotency.NewKeyer([]string{outMethod}), fastRetry()), nil, "", 1, false},
		{"declared idempotent", resilience.Chain(idempotency.NewKeyer([]string{"*"}), fastRetry()), []Option{WithIdempotentMethods(unaryMethod)}, "", 2, false},
		{"caller's key kept", resilience.Chain(idempotency.NewKeyer([]string{"*"}), fastRetry()), nil, "mine", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, keys, mu := keyLogServer(t)
			c := dial(t, start(t, s), NewClient(tt.policy, tt.opts...))
			ctx := t.Context()
			if tt.callerKy != "" {
				ctx = withKey(ctx, IdempotencyKey, tt.callerKy)
			}
			c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			mu.Lock()
			defer mu.Unlock()
			if len(*keys) != tt.want {
				t.Fatalf("attempts: got %d (%q), want %d", len(*keys), *keys, tt.want)
			}
			for _, k := range *keys {
				switch {
				case tt.callerKy != "" && k != tt.callerKy:
					t.Errorf("key %q, want the caller's %q", k, tt.callerKy)
				case tt.stamped && (k != (*keys)[0] || len(k) != 36):
					t.Errorf("keys %q, want one stamped UUID on every attempt", *keys)
				case !tt.stamped && tt.callerKy == "" && k != "":
					t.Errorf("key %q, want none", k)
				}
			}
		})
	}
}

// TestStandardRetriesOnlyWithKeys checks that through Standard a call to a
// method not declared idempotent is retried only with WithIdempotencyKeys.
func TestStandardRetriesOnlyWithKeys(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []standard.Option
		want int
	}{
		{"without keys", nil, 1},
		{"with keys", []standard.Option{standard.WithIdempotencyKeys(unaryMethod)}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, keys, mu := keyLogServer(t)
			c, err := Standard(WithPipeline(append([]standard.Option{standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond))}, tt.opts...)...))
			if err != nil {
				t.Fatal(err)
			}
			_, err = dial(t, start(t, s), c).UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
			mu.Lock()
			defer mu.Unlock()
			if len(*keys) != tt.want {
				t.Fatalf("attempts: got %d (%q, %v), want %d", len(*keys), *keys, err, tt.want)
			}
			if tt.want == 2 && (err != nil || (*keys)[0] == "" || (*keys)[0] != (*keys)[1]) {
				t.Errorf("got %v with keys %q, want success with one key on both attempts", err, *keys)
			}
		})
	}
}
