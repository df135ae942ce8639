// Package timeout bounds how long an operation may run.
//
// A [Policy] gives the operation a context whose deadline is the timeout, or
// the caller's deadline if that comes sooner (then no timer is armed at
// all). Where it sits in a chain decides what it bounds: outside a retry
// policy it bounds the whole call, every attempt and wait included; inside
// it bounds one attempt. [WithScope] says it outright instead, so that a
// per-attempt timeout stays one whether or not a retry runs around it.
//
// The timeout is cooperative, as everything built on context is: the
// operation must return when its context is done. No goroutine is started
// per call, and an operation that ignores its context runs to completion.
// The context arms a runtime timer only once something waits for its end
// (Done, AfterFunc, a derived context, a held result); until then its Err
// reads the clock, and reports the deadline as soon as it has passed, so
// an operation that only checks Err between steps costs no timer.
//
// Otherwise the operation's context answers as one made by
// context.WithTimeout would. Its Err, context.Cause, Done, AfterFunc and
// the contexts derived from it report the end that came first (the
// policy's deadline, the caller's cancellation with its cause, or the
// policy's own end of the call) and keep reporting it whatever ends later:
// a caller that cancels with a cause after the deadline passed does not
// change what context.Cause reports. A deadline that passes while nothing
// waits counts as if its timer had fired then. One difference remains: a
// caller's context that is not one of this module's tells the operation's
// context that it ended through context.AfterFunc, on a goroutine of its
// own, a moment after the caller's cancel returns, as it tells any context
// not made by the context package.
//
// When the policy's own deadline cuts the operation short, Do returns an
// error that matches both [ErrTimeout] and context.DeadlineExceeded with
// errors.Is, so it can be told apart from the caller's own deadline, which
// is returned as the plain context error.
//
// A result that outlives the operation, such as an HTTP response body read
// after RoundTrip returns or a gRPC stream, keeps its context until it is
// done (see resilience.Hold). What bounds it is the policy's scope
// ([WithScope]). [ScopeAttempt] and [ScopeCall] say it outright, and a
// pipeline that depends on the answer should say it: the standard presets
// do. By default ([ScopeAuto]) it depends, again, on where the policy sits:
//
//   - Inside an attempt (resilience.InAttempt: under a retry policy), the
//     policy bounds the time until the result arrives. When the operation
//     returns in time, the timer is stopped, and the result stays readable
//     until it is done, bounded only by the deadlines outside the attempt.
//   - Outside any attempt, the policy bounds the whole call, the held
//     result included, as http.Client.Timeout bounds reading a response
//     body: when the deadline passes, the body's reads fail with
//     context.DeadlineExceeded. A long download or a long-lived stream
//     needs a total timeout that leaves room for it, or none.
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
