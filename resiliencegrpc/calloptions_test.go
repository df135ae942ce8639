package resiliencegrpc

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/ratelimit"
)

// What a caller observes through the after-call options of one unary call.
type observed struct {
	reply             string
	code              codes.Code
	header, trailer   string // the "attempt" value of each
	peer              bool   // grpc.Peer filled in
	onFinish          int    // grpc.OnFinish calls
	onFinishCodes     []codes.Code
	headerN, trailerN int // values under "attempt"
}

// invokeObserved makes one unary call on conn with grpc.Header,
// grpc.Trailer, grpc.Peer and grpc.OnFinish, and reports what they saw.
func invokeObserved(t *testing.T, conn *grpc.ClientConn) observed {
	t.Helper()
	var (
		header, trailer metadata.MD
		p               peer.Peer
		mu              sync.Mutex
		o               observed
	)
	reply := &testgrpc.SimpleResponse{}
	err := conn.Invoke(t.Context(), unaryMethod, &testgrpc.SimpleRequest{}, reply,
		grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p),
		grpc.OnFinish(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			o.onFinish++
			o.onFinishCodes = append(o.onFinishCodes, status.Code(err))
		}))
	mu.Lock()
	defer mu.Unlock()
	o.reply, o.code = reply.Username, status.Code(err)
	if vs := header.Get("attempt"); len(vs) > 0 {
		o.header = vs[0]
	}
	if vs := trailer.Get("attempt"); len(vs) > 0 {
		o.trailer = vs[0]
	}
	o.headerN, o.trailerN = len(header.Get("attempt")), len(trailer.Get("attempt"))
	o.peer = p.Addr != nil
	return o
}

// attemptMetadata answers each call with trailer "attempt: n" and, unless
// fail says to fail it, header "attempt: n" and a reply naming n. A failed
// attempt sends no header, as gRPC's retry design asks of a retryable
// failure (a trailers-only response): grpc-go commits an attempt once it
// received headers.
func attemptMetadata(fail func(n int) bool, slow func(n int) bool) func(context.Context, int, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return func(ctx context.Context, n int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		md := metadata.Pairs("attempt", strconv.Itoa(n))
		grpc.SetTrailer(ctx, md)
		if fail == nil || !fail(n) {
			if err := grpc.SetHeader(ctx, md); err != nil {
				return nil, err
			}
		}
		if slow != nil && slow(n) {
			// Send the header now, so that the attempt has one even
			// when it is cancelled, and wait for the end.
			if err := grpc.SendHeader(ctx, nil); err != nil {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Second):
			}
		}
		if fail != nil && fail(n) {
			return nil, status.Error(codes.Unavailable, "down")
		}
		return &testgrpc.SimpleResponse{Username: strconv.Itoa(n)}, nil
	}
}

// grpcRetryConfig is a service config with grpc-go's own retry policy for
// the test service.
const grpcRetryConfig = `{"methodConfig": [{
	"name": [{"service": "grpc.testing.TestService"}],
	"retryPolicy": {
		"maxAttempts": 4,
		"initialBackoff": "0.001s",
		"maxBackoff": "0.005s",
		"backoffMultiplier": 2,
		"retryableStatusCodes": ["UNAVAILABLE"]
	}
}]}`

// dialWith connects to addr with opts until the test ends.
func dialWith(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A call retried twice: the caller sees the third attempt's header,
// trailer and peer, and OnFinish runs once, as with grpc-go's own retry.
func TestUnaryCallOptionsOnRetry(t *testing.T) {
	want := observed{reply: "3", code: codes.OK, header: "3", trailer: "3", peer: true, onFinish: 1,
		onFinishCodes: []codes.Code{codes.OK}, headerN: 1, trailerN: 1}
	fail := func(n int) bool { return n <= 2 }
	for _, tt := range []struct {
		name string
		dial func(t *testing.T, addr string) *grpc.ClientConn
	}{
		{"grpc-go retryPolicy", func(t *testing.T, addr string) *grpc.ClientConn {
			return dialWith(t, addr, grpc.WithDefaultServiceConfig(grpcRetryConfig))
		}},
		{"resiliencegrpc retry", func(t *testing.T, addr string) *grpc.ClientConn {
			return dialConn(t, addr, NewClient(fastRetry(), WithIdempotentMethods(unaryMethod)))
		}},
		{"resiliencegrpc hedge", func(t *testing.T, addr string) *grpc.ClientConn {
			return dialConn(t, addr, NewClient(hedge.New(hedge.WithDelay(time.Hour), hedge.WithMaxHedges(3)), WithIdempotentMethods(unaryMethod)))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{unary: attemptMetadata(fail, nil)}
			got := invokeObserved(t, tt.dial(t, start(t, s)))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("observed %+v, want %+v", got, want)
			}
			wantCalls(t, s, 3)
		})
	}
}

// A call that fails for good: OnFinish runs once, with the status the
// caller gets; the header and trailer are the last attempt's.
func TestUnaryCallOptionsOnFailure(t *testing.T) {
	want := observed{code: codes.Unavailable, header: "", trailer: "4", peer: true, onFinish: 1,
		onFinishCodes: []codes.Code{codes.Unavailable}, headerN: 0, trailerN: 1}
	always := func(int) bool { return true }
	for _, tt := range []struct {
		name string
		dial func(t *testing.T, addr string) *grpc.ClientConn
	}{
		{"grpc-go retryPolicy", func(t *testing.T, addr string) *grpc.ClientConn {
			return dialWith(t, addr, grpc.WithDefaultServiceConfig(grpcRetryConfig))
		}},
		{"resiliencegrpc retry", func(t *testing.T, addr string) *grpc.ClientConn {
			return dialConn(t, addr, NewClient(fastRetry(), WithIdempotentMethods(unaryMethod)))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{unary: attemptMetadata(always, nil)}
			got := invokeObserved(t, tt.dial(t, start(t, s)))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("observed %+v, want %+v", got, want)
			}
			wantCalls(t, s, 4)
		})
	}
}

// A hedged call whose first attempt is slow and loses: the caller sees
// only the winner's header, trailer and peer, with the winner's reply, and
// OnFinish runs once. Before, every attempt wrote into the caller's
// variables from its own goroutine (a data race under -race), and the
// loser, ending last, left its header in place of the winner's.
func TestHedgedUnaryCallOptionsFromWinner(t *testing.T) {
	s := &server{unary: attemptMetadata(nil, func(n int) bool { return n%2 == 1 })}
	conn := dialConn(t, start(t, s), NewClient(hedge.New(hedge.WithDelay(5*time.Millisecond)), WithIdempotentMethods(unaryMethod)))
	for i := range 10 {
		got := invokeObserved(t, conn)
		n, _ := strconv.Atoi(got.reply)
		if n%2 != 0 || got.header != got.reply || got.trailer != got.reply || !got.peer || got.onFinish != 1 || got.headerN != 1 || got.trailerN != 1 {
			t.Fatalf("call %d: observed %+v: want the header and trailer of the winning attempt %q, a peer, and OnFinish once", i, got, got.reply)
		}
	}
}

// Without interceptors, the same call: the reference the tests above
// compare with.
func TestUnaryCallOptionsPlainGRPC(t *testing.T) {
	s := &server{unary: attemptMetadata(nil, nil)}
	got := invokeObserved(t, dialWith(t, start(t, s)))
	want := observed{reply: "1", code: codes.OK, header: "1", trailer: "1", peer: true, onFinish: 1,
		onFinishCodes: []codes.Code{codes.OK}, headerN: 1, trailerN: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %+v, want %+v", got, want)
	}
}

// refuseAll is a policy that turns every call away without an attempt.
type refuseAll struct{}

func (refuseAll) Do(context.Context, func(context.Context) error) error { return ratelimit.ErrLimited }

// A call the policies turn away before any attempt: OnFinish still runs
// once, with the status the caller gets, and the caller's header and
// trailer are left as they were, as gRPC leaves them for a call that never
// had a stream.
func TestUnaryCallOptionsNoAttempt(t *testing.T) {
	s := &server{unary: attemptMetadata(nil, nil)}
	conn := dialConn(t, start(t, s), NewClient(refuseAll{}))
	header := metadata.Pairs("mine", "1")
	var finished []codes.Code
	err := conn.Invoke(t.Context(), unaryMethod, &testgrpc.SimpleRequest{}, &testgrpc.SimpleResponse{},
		grpc.Header(&header), grpc.OnFinish(func(err error) { finished = append(finished, status.Code(err)) }))
	wantCode(t, err, codes.ResourceExhausted)
	if fmt.Sprint(finished) != fmt.Sprint([]codes.Code{codes.ResourceExhausted}) || header.Get("mine") == nil {
		t.Errorf("OnFinish saw %v, header %v; want [ResourceExhausted] once and the header untouched", finished, header)
	}
	wantCalls(t, s, 0)
}

// Hedges sent at once, whose attempts all answer: under -race, no two
// attempts write into the caller's variables. Before, each attempt's gRPC
// wrote the caller's header, trailer and peer from its own goroutine.
func TestHedgedUnaryCallOptionsNoRace(t *testing.T) {
	s := &server{unary: attemptMetadata(nil, nil)}
	conn := dialConn(t, start(t, s), NewClient(hedge.New(hedge.WithDelay(time.Microsecond), hedge.WithMaxHedges(3)), WithIdempotentMethods(unaryMethod)))
	for i := range 50 {
		got := invokeObserved(t, conn)
		if got.header != got.reply || got.trailer != got.reply || got.onFinish != 1 {
			t.Fatalf("call %d: observed %+v: want the header and trailer of the attempt whose reply it got, and OnFinish once", i, got)
		}
	}
}
