package resilience

import (
	"context"
	"errors"
	"time"
)

// A Kind says what an operation's result means to the policies that ran it:
// whether a retry may help and whether a circuit breaker counts it as a
// failure of the dependency.
type Kind uint8

const (
	// KindSuccess is a nil error.
	KindSuccess Kind = iota
	// KindTransient is a dependency failure that may pass: a connection
	// error, a timeout, an HTTP 503. Retried; counted by breakers. Errors
	// that are not marked are transient.
	KindTransient
	// KindPermanent is a dependency failure that a retry will not fix: a
	// certificate error, an HTTP 501. Never retried; counted by breakers.
	KindPermanent
	// KindThrottled is pushback: the dependency (HTTP 429, gRPC
	// RESOURCE_EXHAUSTED) turned the call away for now, often saying when
	// to come back ([RetryAfter]); a local policy that wants the call
	// back later (a full bulkhead, a rate limit) uses it too. Retried
	// after that delay; not counted by breakers, since it is not evidence
	// of an outage.
	KindThrottled
	// KindRejected is a completed call whose answer the caller must handle:
	// an HTTP 4xx, an invalid gRPC argument. Never retried; not counted by
	// breakers as success or failure.
	KindRejected
	// KindCanceled is the caller giving up: its context canceled
	// (context.Canceled) or its own deadline passed. Never retried; never
	// counted.
	KindCanceled
	// KindRefused is a local policy refusing the call without sending it,
	// and asking for no retry: an open circuit breaker failing fast. The
	// dependency was not reached, so breakers do not count it either.
	KindRefused
)

var kindNames = [...]string{"success", "transient", "permanent", "throttled", "rejected", "canceled", "refused"}

// String returns the kind's name in lower case, as used in telemetry.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Retryable reports whether a retry may help: transient failures and
// throttling. A refusal ([KindRefused]) is not retryable.
func (k Kind) Retryable() bool { return k == KindTransient || k == KindThrottled }

// Failure reports whether the kind is a failure of the dependency, the kind
// a circuit breaker counts.
func (k Kind) Failure() bool { return k == KindTransient || k == KindPermanent }

// Classify reports the kind of err. A nil error is [KindSuccess]; an error
// marked with [Mark] or [MarkRetryAfter] has the kind of its outermost mark;
// otherwise an error matching context.Canceled is [KindCanceled] and anything
// else, context.DeadlineExceeded included, is [KindTransient].
func Classify(err error) Kind {
	if err == nil {
		return KindSuccess
	}
	var m *markedError
	if errors.As(err, &m) {
		return m.kind
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	return KindTransient
}

// RetryAfter reports the delay the dependency asked for before the next
// attempt, as marked by [MarkRetryAfter]. ok is false when err carries no
// such request. A zero delay with ok true means "retry at once".
func RetryAfter(err error) (d time.Duration, ok bool) {
	var m *markedError
	if errors.As(err, &m) && m.after >= 0 {
		return m.after, true
	}
	return 0, false
}

// Mark returns err marked with kind k, for [Classify]. The result wraps err:
// errors.Is and errors.As see through it. Mark(nil, k) is nil.
func Mark(err error, k Kind) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, kind: k, after: -1}
}

// MarkRetryAfter is like [Mark] and records that the dependency asked the
// caller to wait d before trying again (HTTP Retry-After, gRPC
// grpc-retry-pushback-ms). A negative d is treated as zero. Retry policies
// honour d but cap it at their maximum delay. The delay concerns the whole
// dependency ([PushbackDependency]); [MarkScopedRetryAfter] marks one that
// concerns less.
func MarkRetryAfter(err error, k Kind, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, kind: k, after: max(d, 0)}
}

// A PushbackScope says which calls a dependency's requested delay
// ([MarkRetryAfter]) concerns. Retry and hedging policies honour the delay
// whatever its scope, for the call that received it; the scope tells a
// policy that holds the dependency's other calls (a pushback gate) how
// much the delay says about them.
type PushbackScope uint8

const (
	// PushbackDependency: the dependency as a whole asked for the pause,
	// or a local policy speaks for it (an open breaker keeping callers
	// until its probe). A pushback gate holds every call to the
	// dependency at once. The scope of [MarkRetryAfter].
	PushbackDependency PushbackScope = iota
	// PushbackRequest: the answer to this request only, such as an HTTP
	// 429 for one tenant's or one endpoint's quota. It is evidence about
	// the dependency, not proof: a pushback gate holds the dependency's
	// other calls only when such answers are a large share of its recent
	// ones.
	PushbackRequest
	// PushbackCall: this call alone, such as an earlier attempt of the
	// same call still running under its idempotency key. A pushback gate
	// does not count it as pushback.
	PushbackCall
)

var scopeNames = [...]string{"dependency", "request", "call"}

// String returns the scope's name in lower case.
func (s PushbackScope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return "unknown"
}

// MarkScopedRetryAfter is like [MarkRetryAfter] for a delay whose scope is
// s: what the delay says about the dependency's other calls. Adapters use
// it to tell one request's pushback (an HTTP 429) from the dependency's.
func MarkScopedRetryAfter(err error, k Kind, d time.Duration, s PushbackScope) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, kind: k, after: max(d, 0), scope: s}
}

// RetryAfterScope reports the scope of the delay [RetryAfter] returns for
// err: [PushbackDependency] unless it was marked with
// [MarkScopedRetryAfter]. ok is false when err carries no delay.
func RetryAfterScope(err error) (s PushbackScope, ok bool) {
	var m *markedError
	if errors.As(err, &m) && m.after >= 0 {
		return m.scope, true
	}
	return PushbackDependency, false
}

type markedError struct {
	err   error
	kind  Kind
	scope PushbackScope
	after time.Duration // < 0: none
}

func (e *markedError) Error() string { return e.err.Error() }
func (e *markedError) Unwrap() error { return e.err }
