package telemetry

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience/internal/ctxwatch"
)

// AttemptClock times one attempt for resilience.attempt.duration: the time
// the dependency had it. That is the time from [AttemptRecorder.Start] to
// [AttemptRecorder.End], less what the policies inside the attempt held
// it for before it went on (a pushback gate, a bulkhead, a rate limit,
// which time it in their own histograms through [WaitRecorder.Record]);
// an attempt a policy inside turned away unsent ([NotSent]: an open
// breaker, a closed gate, a full bulkhead) is no attempt and not recorded.
//
// It is the context the attempt runs in, so that the policies inside find
// it; it is made only when the histogram is recorded.
type AttemptClock struct {
	context.Context
	began   time.Time
	held    atomic.Int64 // nanoseconds, added by the policies inside
	notSent atomic.Bool
}

type clockKey struct{}

// Value returns c for the clock's key.
func (c *AttemptClock) Value(key any) any {
	if key == (clockKey{}) {
		return c
	}
	return c.Context.Value(key)
}

type afterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// AfterFunc lets derived contexts follow cancellation without a goroutine,
// as the module's other contexts do.
func (c *AttemptClock) AfterFunc(f func()) (stop func() bool) {
	if af, ok := c.Context.(afterFuncer); ok {
		return af.AfterFunc(f)
	}
	return context.AfterFunc(c.Context, f)
}

// ForwardWatch registers r with the context underneath.
func (c *AttemptClock) ForwardWatch(r *ctxwatch.Reg) bool { return ctxwatch.Forward(c.Context, r) }

// Start starts the clock of an attempt that runs in ctx (an attempt's
// context, from resilience.StartAttempt) and returns the context to run it
// with. When the histogram is not recorded it returns ctx and a nil clock,
// at no cost.
func (r AttemptRecorder) Start(ctx context.Context) (context.Context, *AttemptClock) {
	if !r.Active(ctx) {
		return ctx, nil
	}
	c := &AttemptClock{Context: ctx, began: time.Now()}
	return c, c
}

// End records attempt n (1-based) of the call in ctx, timed by c, that
// returned err: nothing when c is nil or a policy inside turned the attempt
// away unsent.
func (r AttemptRecorder) End(ctx context.Context, n int, c *AttemptClock, err error) {
	if c == nil || c.notSent.Load() {
		return
	}
	d := time.Since(c.began) - time.Duration(c.held.Load())
	r.Record(ctx, n, max(d, 0), err)
}

// NotSent notes that a policy turned the attempt running in ctx away
// without sending it (an open breaker, a closed pushback gate, a full
// bulkhead, a rate limit), so that it is not recorded as an attempt. It
// does nothing outside a timed attempt.
func NotSent(ctx context.Context) {
	if c, ok := ctx.Value(clockKey{}).(*AttemptClock); ok {
		c.notSent.Store(true)
	}
}

// held notes that a policy held the attempt running in ctx for d before
// letting it go on.
func held(ctx context.Context, d time.Duration) {
	if c, ok := ctx.Value(clockKey{}).(*AttemptClock); ok {
		c.held.Add(int64(d))
	}
}

// Received reports whether ctx is the context of a call a server received
// ([Incoming]): a policy that runs on both sides (a rate limiter in a gRPC
// server interceptor) reports there under its server-side name.
func Received(ctx context.Context) bool {
	in, _ := ctx.Value(incomingKey{}).(incomingCall)
	return in.incoming
}
