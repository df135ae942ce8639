package resiliencegrpc

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// codeError is how an attempt's status error reaches the policies: the
// error itself, unchanged in text, with the OpenTelemetry error.type of
// its status code. It has no GRPCStatus method of its own, so that status
// readers and [toStatus] find the attempt's error beneath it.
type codeError struct {
	err  error
	code codes.Code
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// ErrorType returns the status code's name as the gRPC semantic conventions
// spell it ("UNAVAILABLE"), the error.type the policies record.
func (e *codeError) ErrorType() string { return codeName(e.code) }

var codeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// codeName returns the canonical name of c. A server may send any number
// as a code; those outside the canonical set are "_OTHER", so that
// error.type stays bounded.
func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "_OTHER"
}

// MarkAttempts returns a client stats handler that runs h and then
// records, on the span h started for the RPC, which attempt of the call
// it is: the attribute resilience.attempt, 1 for the first attempt, 2 for
// the first retry, and so on. The semantic conventions have no gRPC
// counterpart of http.request.resend_count, so the module's own attribute,
// the one its attempt histogram and retry events carry, is used.
//
// It is meant to wrap a tracing stats handler that starts one client span
// per RPC, such as otelgrpc's, which then gives each attempt of a [Client]
// its own span, a child of the caller's:
//
//	conn, err := grpc.NewClient(addr, creds,
//		grpc.WithStatsHandler(resiliencegrpc.MarkAttempts(otelgrpc.NewClientHandler())),
//		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
//		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
//
// The attribute is set only on RPCs made as an attempt of a policy that
// may make several (a retry policy; see resilience.InAttempt); a call sent
// outside one gets none. MarkAttempts changes nothing else h does.
func MarkAttempts(h stats.Handler) stats.Handler {
	if h == nil {
		panic("resiliencegrpc: MarkAttempts: h is nil")
	}
	return markAttempts{h}
}

type markAttempts struct{ stats.Handler }

func (m markAttempts) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	ctx = m.Handler.TagRPC(ctx, info)
	if resilience.InAttempt(ctx) {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(telemetry.AttemptKey.Int(resilience.AttemptNumber(ctx)))
		}
	}
	return ctx
}
