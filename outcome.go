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
// honour d but cap it at their maximum delay.
func MarkRetryAfter(err error, k Kind, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, kind: k, after: max(d, 0)}
}

type markedError struct {
	err   error
	kind  Kind
	after time.Duration // < 0: none
}

func (e *markedError) Error() string { return e.err.Error() }
func (e *markedError) Unwrap() error { return e.err }
