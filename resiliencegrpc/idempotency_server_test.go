package resiliencegrpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resilience-go/resilience/idempotency"
)

// TestIdempotencyReplaysMetadata: a replay carries the header and trailer
// metadata the handler set (grpc.SetHeader, grpc.SendHeader,
// grpc.SetTrailer), for a reply and for a recorded status.
func TestIdempotencyReplaysMetadata(t *testing.T) {
	s := &server{unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		grpc.SetHeader(ctx, metadata.Pairs("x-order", fmt.Sprint("o", n)))
		grpc.SetTrailer(ctx, metadata.Pairs("x-checksum", fmt.Sprint("c", n), "x-bin", "\x00\xff"))
		switch string(req.GetPayload().GetBody()) {
		case "send":
			grpc.SendHeader(ctx, metadata.Pairs("x-sent", fmt.Sprint("s", n)))
		case "missing":
			return nil, status.Error(codes.NotFound, "no such order")
		}
		return &testgrpc.SimpleResponse{Payload: payload(fmt.Sprint("reply ", n))}, nil
	}}
	addr := start(t, s, grpc.ChainUnaryInterceptor(IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
	c := dial(t, addr, nil)
	for _, body := range []string{"pay", "send", "missing"} {
		t.Run(body, func(t *testing.T) {
			ctx := withKey(t.Context(), IdempotencyKey, "k-"+body)
			call := func() (string, metadata.MD, metadata.MD) {
				var h, tr metadata.MD
				r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: payload(body)}, grpc.Header(&h), grpc.Trailer(&tr))
				return fmt.Sprint(string(r.GetPayload().GetBody()), status.Code(err)), h, tr
			}
			r1, h1, t1 := call()
			n := s.n()
			r2, h2, t2 := call()
			if s.n() != n || r1 != r2 || strings.Join(h2[ReplayedMetadata], ",") != "true" {
				t.Fatalf("repeat: got %q %v after %d calls, want %q replayed", r2, h2, s.n(), r1)
			}
			for _, k := range []string{"x-order", "x-sent"} {
				if got, want := strings.Join(h2[k], ","), strings.Join(h1[k], ","); got != want {
					t.Errorf("header %s: got %q, want %q", k, got, want)
				}
			}
			if len(h1["x-order"]) == 0 || (body == "send" && len(h1["x-sent"]) == 0) {
				t.Errorf("first call's header %v lacks what the handler set", h1)
			}
			for _, k := range []string{"x-checksum", "x-bin"} {
				if got, want := strings.Join(t2[k], ","), strings.Join(t1[k], ","); got != want || want == "" {
					t.Errorf("trailer %s: got %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestIdempotencyBareKeysWithSemicolons: gRPC keys are bare; two keys that
// differ after a semicolon are two keys.
func TestIdempotencyBareKeysWithSemicolons(t *testing.T) {
	s := &server{unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		return &testgrpc.SimpleResponse{Payload: payload(fmt.Sprint("reply ", n))}, nil
	}}
	addr := start(t, s, grpc.ChainUnaryInterceptor(IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
	c := dial(t, addr, nil)
	for _, k := range []string{"invoice-17;attempt=1", "invoice-17;attempt=2"} {
		if _, err := c.UnaryCall(withKey(t.Context(), IdempotencyKey, k), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	wantCalls(t, s, 2)
}

// TestIdempotencyVersion1Records: records written before metadata was
// recorded (kept up to a TTL across a deploy) are still replayed.
func TestIdempotencyVersion1Records(t *testing.T) {
	st, _ := proto.Marshal(status.New(codes.NotFound, "gone").Proto())
	_, _, _, err := decodeOutcome(append([]byte{1, 1}, st...))
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "gone" {
		t.Errorf("version 1 status: got %v, want NotFound gone", err)
	}
	msg := &testgrpc.SimpleResponse{Payload: payload("r")}
	b, _ := proto.Marshal(msg)
	name := string(msg.ProtoReflect().Descriptor().FullName())
	rec := append([]byte{1, 0, byte(len(name))}, name...)
	reply, h, tr, err := decodeOutcome(append(rec, b...))
	if err != nil || !proto.Equal(reply.(proto.Message), msg) || h != nil || tr != nil {
		t.Errorf("version 1 reply: got %v %v %v, %v; want %v", reply, h, tr, err, msg)
	}
	if _, _, _, err := decodeOutcome([]byte{2, 0, 200}); status.Code(err) != codes.Unavailable {
		t.Errorf("malformed record: got %v, want Unavailable", err)
	}
}

// TestIdempotencyInFlightRetryInfo: the Aborted answer for a key in flight
// carries the advised wait as a google.rpc.RetryInfo detail.
func TestIdempotencyInFlightRetryInfo(t *testing.T) {
	release := make(chan struct{})
	s := &server{unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		<-release
		return &testgrpc.SimpleResponse{}, nil
	}}
	addr := start(t, s, grpc.ChainUnaryInterceptor(IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
	c := dial(t, addr, nil)
	ctx := withKey(t.Context(), IdempotencyKey, "k")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	}()
	for s.n() == 0 { // wait for the first call to reach the handler
		time.Sleep(time.Millisecond)
	}
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	close(release)
	<-done
	wantCode(t, err, codes.Aborted)
	var ri *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil || ri.GetRetryDelay().AsDuration() != time.Second {
		t.Errorf("details %v, want a RetryInfo of 1s", status.Convert(err).Details())
	}
}

// TestIdempotencyStoreDownSaysWhy: when the store cannot reserve a key the
// call fails with Unavailable and a message that says the call was not run
// and why.
func TestIdempotencyStoreDownSaysWhy(t *testing.T) {
	s := &server{unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		return &testgrpc.SimpleResponse{}, nil
	}}
	store := idempotency.NewMemoryStore(idempotency.WithMaxEntries(1))
	addr := start(t, s, grpc.ChainUnaryInterceptor(IdempotencyServerInterceptor(store)))
	c := dial(t, addr, nil)
	if _, err := c.UnaryCall(withKey(t.Context(), IdempotencyKey, "a"), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UnaryCall(withKey(t.Context(), IdempotencyKey, "b"), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "not run") || !strings.Contains(msg, "store is full") {
		t.Errorf("message %q, want it to say the call was not run because the store is full", msg)
	}
	wantCalls(t, s, 1)
}
