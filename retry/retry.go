package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Reasons an [*Error] gives for stopping.
var (
	// ErrExhausted: the policy made its maximum number of attempts.
	ErrExhausted = errors.New("retry: attempts exhausted")
	// ErrMaxElapsed: a further wait would pass the policy's maximum
	// elapsed time.
	ErrMaxElapsed = errors.New("retry: maximum elapsed time reached")
	// ErrDeadline: a further wait would end past the context's deadline,
	// so no attempt could follow it.
	ErrDeadline = errors.New("retry: no time left before the deadline")
	// ErrBudget: the retry budget ([WithBudget]) had too few tokens left.
	// It is budget.ErrExhausted, which the hedge policy reports too.
	ErrBudget = budget.ErrExhausted
)

// Error reports that a [Policy] stopped retrying a retryable failure.
// errors.Is and errors.As see both the reason and the last attempt's error.
type Error struct {
	// Attempts is the number of attempts made, the first one included.
	Attempts int
	// Reason is why the policy stopped: ErrExhausted, ErrMaxElapsed,
	// ErrDeadline, ErrBudget, or the call's resilience.Call.NoRetry.
	Reason error
	// Err is the last attempt's error.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s) (%v): %v", e.Attempts, e.Reason, e.Err)
}

// Unwrap returns the last attempt's error and the reason, in that order, so
// that the outcome of the last attempt is what resilience.Classify reads.
func (e *Error) Unwrap() []error { return []error{e.Err, e.Reason} }

// Event describes a retry about to happen, for [WithOnRetry].
type Event struct {
	// Attempt is the number of the attempt that failed (1 for the first).
	Attempt int
	// Err is its error.
	Err error
	// Wait is how long the policy waits before the next attempt.
	Wait time.Duration
	// Pushback reports whether Wait came from the dependency's own request
	// (resilience.RetryAfter), capped at the maximum delay.
	Pushback bool
}

// Policy is a [resilience.Policy] that retries failed attempts. Build it
// with [New]; it is safe for concurrent use. The zero Policy is not usable.
type Policy struct {
	c        config
	tel      *telemetry.Policy
	attempts telemetry.AttemptRecorder
}

// New returns a retry policy configured by opts. It panics, naming the
// option, if an option's value is invalid.
func New(opts ...Option) *Policy {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	c.validate()
	tel := telemetry.New(telemetry.KindRetry, c.tel)
	return &Policy{c: c, tel: tel, attempts: tel.Attempts()}
}

// Do runs op, and runs it again after a wait while it fails with a
// retryable error and the policy's limits allow. See the package
// documentation for the rules.
//
// Each attempt's duration is recorded in resilience.attempt.duration; each
// retry scheduled and each retryable failure given up on is counted in
// resilience.events and added as an event to the span in ctx (see
// docs/telemetry.md).
func (p *Policy) Do(ctx context.Context, op func(context.Context) error) error {
	call, inCall := resilience.CallFrom(ctx)
	if inCall && !call.Idempotent {
		return op(ctx)
	}
	var (
		start = time.Now()
		b     *backoff.ExponentialBackOff // made on the first failure only
		timer *time.Timer
	)
	for n := 1; ; n++ {
		actx, at := resilience.StartAttempt(ctx, n)
		var began time.Time
		timed := p.attempts.Active(ctx)
		if timed {
			began = time.Now()
		}
		err := op(actx)
		if timed {
			p.attempts.Record(ctx, n, time.Since(began), err)
		}
		if err == nil {
			p.earn(n)
			at.Keep()
			return nil
		}
		if ctx.Err() != nil {
			// The caller gave up (or an outer deadline passed): stop,
			// and report it as theirs.
			at.Discard()
			return ctx.Err()
		}
		if !p.c.retryIf(err) {
			at.Keep()
			return err
		}
		if call.NoRetry != nil {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: call.NoRetry, Err: err})
		}
		if n >= p.c.maxAttempts {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrExhausted, Err: err})
		}
		if b == nil {
			b = backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(p.c.initial),
				backoff.WithMaxInterval(p.c.maxDelay),
				backoff.WithMultiplier(p.c.multiplier),
				backoff.WithRandomizationFactor(p.c.jitter),
				backoff.WithMaxElapsedTime(0),
			)
		}
		wait := b.NextBackOff()
		after, pushback := resilience.RetryAfter(err)
		if pushback {
			wait = after
		}
		wait = min(wait, p.c.maxDelay)
		now := time.Now()
		if p.c.maxElapsed > 0 && now.Add(wait).Sub(start) > p.c.maxElapsed {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrMaxElapsed, Err: err})
		}
		if dl, ok := ctx.Deadline(); ok && !now.Add(wait).Before(dl) {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrDeadline, Err: err})
		}
		if !p.c.budget.TryWithdraw() {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrBudget, Err: err})
		}
		at.Discard()
		p.scheduled(ctx, n, err, wait, pushback)
		if p.c.onRetry != nil {
			p.c.onRetry(ctx, Event{Attempt: n, Err: err, Wait: wait, Pushback: pushback})
		}
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
		}
	}
}

// scheduled reports a retry of attempt n after wait.
func (p *Policy) scheduled(ctx context.Context, n int, err error, wait time.Duration, pushback bool) {
	p.tel.Count(ctx, telemetry.EventRetryScheduled)
	if s := p.tel.Span(ctx); s != nil {
		p.tel.AddEvent(s, telemetry.EventRetryScheduled,
			telemetry.AttemptKey.Int(n),
			attribute.Float64(string(telemetry.WaitKey), wait.Seconds()),
			telemetry.PushbackKey.Bool(pushback),
			telemetry.OutcomeKey.String(resilience.Classify(err).String()),
			semconv.ErrorTypeKey.String(telemetry.ErrorType(err)))
	}
}

// earn credits the budget, if any, with a successful call; a success on a
// retry also gets that retry's cost back.
func (p *Policy) earn(n int) {
	p.c.budget.Deposit()
	if n > 1 {
		p.c.budget.Refund()
	}
}

// giveUp reports that the policy stopped retrying, and returns e.
func (p *Policy) giveUp(ctx context.Context, e *Error) error {
	ev := telemetry.EventRetryExhausted
	if e.Reason == ErrBudget {
		ev = telemetry.EventBudgetExhausted
	}
	p.tel.Count(ctx, ev)
	if s := p.tel.Span(ctx); s != nil {
		p.tel.AddEvent(s, ev,
			telemetry.AttemptKey.Int(e.Attempts),
			telemetry.ReasonKey.String(reason(e.Reason)),
			telemetry.OutcomeKey.String(resilience.Classify(e.Err).String()),
			semconv.ErrorTypeKey.String(telemetry.ErrorType(e.Err)))
	}
	return e
}

// reason names why a policy gave up, from a fixed set.
func reason(err error) string {
	switch err {
	case ErrExhausted:
		return "exhausted"
	case ErrMaxElapsed:
		return "max_elapsed"
	case ErrDeadline:
		return "deadline"
	case ErrBudget:
		return "budget"
	}
	return "no_retry"
}
