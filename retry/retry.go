package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// ErrDeadline: a further wait would end too close to the context's
	// deadline (less than the minimum attempt time before it, see
	// [WithMinAttemptTime]), so no useful attempt could follow it.
	ErrDeadline = errors.New("retry: no time left before the deadline")
	// ErrTooLate: the wait ended, but less than the minimum attempt time
	// was left before the context's deadline, so the next attempt was
	// not started. It happens when the process was starved or the wait
	// overran (a paused process, an overloaded machine).
	ErrTooLate = errors.New("retry: too late to start another attempt")
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
	// ErrDeadline, ErrTooLate, ErrBudget, or the call's resilience.Call.NoRetry.
	Reason error
	// Err is the last attempt's error.
	Err error
}

func (e *Error) Error() string {
	attempts := "attempts"
	if e.Attempts == 1 {
		attempts = "attempt"
	}
	// The reasons of this package already say "retry: ".
	var reason string
	if e.Reason != nil {
		reason = strings.TrimPrefix(e.Reason.Error(), "retry: ")
	}
	return fmt.Sprintf("retry: gave up after %d %s (%s): %v", e.Attempts, attempts, reason, e.Err)
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
	// (resilience.RetryAfter on a retryable failure), capped at the
	// maximum delay.
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
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("retry: New: option %d is nil", i))
		}
		o.apply(&c)
	}
	c.validate()
	tel := telemetry.New(telemetry.KindRetry, c.tel)
	return &Policy{c: c, tel: tel, attempts: tel.Attempts()}
}

// MaxDelay returns the longest wait the policy makes between attempts
// ([WithBackoff]), which also caps a server's requested delay.
func (p *Policy) MaxDelay() time.Duration { return p.c.maxDelay }

// MinAttemptTime returns the least time before the deadline for which the
// policy starts an attempt ([WithMinAttemptTime]).
func (p *Policy) MinAttemptTime() time.Duration { return p.c.minAttempt }

// MaxAttempts returns the most attempts the policy makes for one call, the
// first one included.
func (p *Policy) MaxAttempts() int { return p.c.maxAttempts }

// Do runs op, and runs it again after a wait while it fails with a
// retryable error and the policy's limits allow. See the package
// documentation for the rules.
//
// Each attempt sent is timed in resilience.attempt.duration; each
// retry scheduled and each retryable failure given up on is counted in
// resilience.events and added as an event to the span in ctx (see
// docs/telemetry.md).
func (p *Policy) Do(ctx context.Context, op func(context.Context) error) error {
	// An attempt is never started for a caller that is gone, nor past the
	// deadline: the context may not have noticed yet (its timer fires a
	// little late on a starved machine), the clock has.
	if err := ctx.Err(); err != nil {
		return err
	}
	// time.Until reads only the monotonic clock when dl has a reading of
	// it (a deadline set in this process does), which costs less than
	// time.Now.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= 0 {
		return context.DeadlineExceeded
	}
	call, inCall := resilience.CallFrom(ctx)
	if inCall && !call.Idempotent {
		// Sent once, but still an attempt: what runs inside (a per-attempt
		// timeout) treats it as one, so a held result is left to it.
		actx, at := resilience.StartAttempt(ctx, 1)
		err := op(actx)
		at.Keep()
		return err
	}
	var (
		asks  int                         // answers "in flight" that spent no attempt
		start time.Time                   // read only with a maximum elapsed time: a clock read costs
		b     *backoff.ExponentialBackOff // made on the first failure only
		timer *time.Timer
	)
	if p.c.maxElapsed > 0 {
		start = time.Now()
	}
	for n := 1; ; n++ {
		actx, at := resilience.StartAttempt(ctx, n)
		actx, clock := p.attempts.Start(actx)
		err := op(actx)
		p.attempts.End(ctx, n, clock, err)
		if err == nil {
			p.earn(ctx, n)
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
		// An answer that the call itself is still in flight (an earlier
		// attempt under the same idempotency key still runs on the
		// server) is no failure to spend an attempt on: the call asks
		// again when the server says, within its deadline, up to
		// maxInFlightAsks more times.
		inFlight := isInFlight(err)
		if inFlight && asks < maxInFlightAsks {
			asks++
		} else if n-asks >= p.c.maxAttempts {
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
		// Only a failure worth retrying says when to retry: a rejection
		// that carries a delay (a custom retryIf may retry it) waits the
		// policy's own backoff.
		after, pushback := resilience.RetryAfter(err)
		pushback = pushback && resilience.Classify(err).Retryable()
		if pushback {
			wait = after
		}
		wait = min(wait, p.c.maxDelay)
		now := time.Now()
		if p.c.maxElapsed > 0 && now.Add(wait).Sub(start) > p.c.maxElapsed {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrMaxElapsed, Err: err})
		}
		dl, hasDeadline := ctx.Deadline()
		if hasDeadline && !now.Add(wait).Before(dl.Add(-p.c.minAttempt)) {
			at.Keep()
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrDeadline, Err: err})
		}
		if !inFlight && !p.c.budget.For(ctx).TryWithdraw() {
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
		// The timer and the context may have ended together, and select
		// picks either: decide as if the context had won. A starved
		// process may also wake from its wait too late for an attempt.
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		left := time.Until(dl)
		if hasDeadline && left <= 0 {
			return context.DeadlineExceeded // the context's timer is late
		}
		if hasDeadline && left < p.c.minAttempt {
			// The attempt was discarded before the wait: the caller gets
			// its error, not its result.
			return p.giveUp(ctx, &Error{Attempts: n, Reason: ErrTooLate, Err: err})
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
func (p *Policy) earn(ctx context.Context, n int) {
	b := p.c.budget.For(ctx)
	b.Deposit()
	if n > 1 {
		b.Refund()
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
	case ErrTooLate:
		return "too_late"
	case ErrBudget:
		return "budget"
	}
	return "no_retry"
}

// maxInFlightAsks bounds how many "in flight" answers a call may get
// beyond its attempts: with a server that advises ever longer waits (the
// idempotency middleware advises as long as the key has been held), ten
// asks cover minutes, and the call's deadline ends them sooner.
const maxInFlightAsks = 10

// isInFlight reports whether err says that the call itself is still in
// flight on the server (throttled, with a pushback for this call alone:
// resilience.PushbackCall), rather than that the attempt failed.
func isInFlight(err error) bool {
	if resilience.Classify(err) != resilience.KindThrottled {
		return false
	}
	scope, ok := resilience.RetryAfterScope(err)
	return ok && scope == resilience.PushbackCall
}
