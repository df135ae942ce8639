package timeout

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// ErrTimeout is matched, with errors.Is, by every error a [Policy] returns
// when its own deadline cut an operation short. Such errors also match
// context.DeadlineExceeded and implement Timeout() bool, reporting true.
var ErrTimeout error = sentinel{}

type sentinel struct{}

func (sentinel) Error() string   { return "timeout: deadline exceeded" }
func (sentinel) Timeout() bool   { return true }
func (sentinel) Is(t error) bool { return t == context.DeadlineExceeded }

// Error is the error a [Policy] returns when its deadline expired before the
// operation finished.
type Error struct {
	// After is the policy's duration.
	After time.Duration
	// Err is what the operation returned after its context was done; it
	// may be nil if the operation ignored its context and returned nil
	// after the deadline.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("timeout: exceeded %v", e.After)
	}
	return fmt.Sprintf("timeout: exceeded %v: %v", e.After, e.Err)
}

// Unwrap returns ErrTimeout and the operation's error.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrTimeout}
	}
	return []error{ErrTimeout, e.Err}
}

// Timeout reports true, as net.Error does for timeouts.
func (e *Error) Timeout() bool { return true }

// Policy is a [resilience.Policy] that bounds an operation's duration. Build
// it with [New]; it is safe for concurrent use. The zero Policy is not
// usable.
type Policy struct {
	d     time.Duration
	scope Scope
	tel   *telemetry.Policy
}

// New returns a policy that gives each operation at most d, configured by
// opts. It panics if d is not positive.
//
// Each expiry of the policy's own deadline is counted in resilience.events
// and added as an event to the span in the call's context (see
// docs/telemetry.md).
func New(d time.Duration, opts ...Option) *Policy {
	if d <= 0 {
		panic(fmt.Sprintf("timeout: New: duration must be positive, got %v", d))
	}
	var c config
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("timeout: New: option %d is nil", i))
		}
		o.apply(&c)
	}
	if c.scope > ScopeAttempt {
		panic(fmt.Sprintf("timeout: WithScope: unknown scope %d", c.scope))
	}
	return &Policy{d: d, scope: c.scope, tel: telemetry.New(telemetry.KindTimeout, c.tel)}
}

// Timeout returns the policy's duration.
func (p *Policy) Timeout() time.Duration { return p.d }

// Do runs op with a context that expires after the policy's duration, or at
// the caller's deadline if that is sooner.
func (p *Policy) Do(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(p.d)
	if dl, ok := ctx.Deadline(); ok && !dl.After(deadline) {
		// The caller's deadline comes first: it is the one that applies,
		// and its error is the caller's own.
		return op(ctx)
	}
	c := newTimerCtx(ctx, deadline)
	err := op(c)
	// A result held past op (a response body, a stream) keeps the context
	// alive until it is done. With ScopeAttempt, the policy bounds the time
	// to that result and stops its timer: the outer deadline bounds the
	// rest. With ScopeCall, it bounds the whole call, held result
	// included, as http.Client.Timeout bounds reading the body.
	held := resilience.Held(c)
	whole := held && p.bounds(ctx) == ScopeCall
	//
	// A context whose timer was never armed (nothing waited for its end)
	// ends here if its deadline passed: Err reads the clock for it.
	c.Err()
	var fired bool
	if whole {
		fired = c.hasFired()
	} else {
		armed, stopped := c.stopTimer()
		fired = c.hasFired() || armed && !stopped
	}
	// The deadline may have passed without the timer firing first: a
	// server that enforces the same deadline can answer before it does.
	if err != nil && ctx.Err() == nil && (fired || !time.Now().Before(deadline)) {
		err = &Error{After: p.d, Err: err}
		p.expired(ctx, err)
	}
	if held {
		resilience.DeferRelease(c, c)
	} else {
		c.cancel()
	}
	return err
}

// bounds returns the policy's scope for a call in ctx.
func (p *Policy) bounds(ctx context.Context) Scope {
	if p.scope != ScopeAuto {
		return p.scope
	}
	if resilience.InAttempt(ctx) {
		return ScopeAttempt
	}
	return ScopeCall
}

// expired reports that the policy's deadline cut the operation short.
func (p *Policy) expired(ctx context.Context, err error) {
	p.tel.Count(ctx, telemetry.EventExpired)
	if s := p.tel.Span(ctx); s != nil {
		p.tel.AddEvent(s, telemetry.EventExpired,
			attribute.Float64(string(telemetry.TimeoutKey), p.d.Seconds()),
			semconv.ErrorTypeKey.String(telemetry.ErrorType(err)))
	}
}

// afterFunc is time.AfterFunc; tests replace it to check that no timer is
// left armed.
var afterFunc = time.AfterFunc
