// Package timeout bounds how long an operation may run.
//
// A [Policy] gives the operation a context whose deadline is the timeout, or
// the caller's deadline if that comes sooner (then no timer is armed at
// all). Where it sits in a chain decides what it bounds: outside a retry
// policy it bounds the whole call, every attempt and wait included; inside
// it bounds one attempt.
//
// The timeout is cooperative, as everything built on context is: the
// operation must return when its context is done. No goroutine is started
// per call, and an operation that ignores its context runs to completion.
//
// When the policy's own deadline cuts the operation short, Do returns an
// error that matches both [ErrTimeout] and context.DeadlineExceeded with
// errors.Is, so it can be told apart from the caller's own deadline, which
// is returned as the plain context error.
//
// A result that outlives the operation, such as an HTTP response body read
// after RoundTrip returns, keeps its context until the body is closed: when
// the operation returns in time, the timer is stopped and the context stays
// alive, bounded by the caller's deadline, until the result is done (see
// resilience.Hold).
//
// # Telemetry
//
// Each expiry of the policy's own deadline is counted in the
// resilience.events counter (event "expired") and added as the span event
// resilience.timeout.expired to the recording span in the call's context.
// [WithName] names the policy; [WithMeterProvider] and
// [WithTracerProvider] replace the global providers. The module's
// docs/telemetry.md lists every instrument.
package timeout
