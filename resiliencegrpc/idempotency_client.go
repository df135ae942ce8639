package resiliencegrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/metadata"

	"github.com/resilience-go/resilience"
)

// An idempotency.Keyer among the client's policies gives a call that is not
// idempotent a key of its own, once per call; the interceptors send it as
// [IdempotencyKey] metadata with every attempt, and the call may be
// retried like one that carried a key from the start.

// outgoingKey returns ctx with the call's key in the outgoing metadata, if
// a policy gave it one and the caller set none.
func outgoingKey(ctx context.Context) context.Context {
	c, ok := resilience.CallFrom(ctx)
	if !ok || c.IdempotencyKey == "" {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	if len(md[IdempotencyKey]) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, IdempotencyKey, c.IdempotencyKey)
}

// errStreamNotReplayable is why a stream that was not idempotent when it
// started is not retried even if a policy gives it a key: the messages it
// sent were not kept for a replay.
var errStreamNotReplayable = errors.New("resiliencegrpc: stream was not idempotent when it started, its messages were not kept for a replay")

// streamNoReplay records in call why a stream that is not idempotent is
// never retried, whatever key a policy gives it.
func streamNoReplay(call *resilience.Call) {
	if !call.Idempotent {
		call.NoRetry = errStreamNotReplayable
	}
}
