// Package pushback holds the calls to a dependency that asked for a pause,
// so that every caller does not find out for itself.
//
// When a host answers most calls with 429 or 503 and Retry-After, a gRPC
// server sends grpc-retry-pushback-ms on most calls, or a RateLimit field
// says the client's quota is spent, the callers learn that the host wants
// no calls for a while;
// without a shared gate each of the others spends an attempt (and the
// host's capacity) to learn the same. A [Gate] remembers the pause
// per host, in a bounded registry keyed like the per-host breaker, and:
//
//   - holds later calls to that host until the pause ends, if their
//     deadline allows (it ends at least the minimum attempt time after the
//     pause); every wait honours the context and none outlasts the
//     deadline;
//   - turns any other call away at once with a [*ClosedError] that says
//     until when ([ErrClosed] with errors.Is; throttled, with the time
//     left as resilience.RetryAfter);
//   - when the pause ends, sends one call first as a probe; the others
//     wait for its answer (at most [WithProbeTimeout]) and follow it,
//     spread at random over [WithReleaseSpread] (100ms) so that they do not
//     all reach the host in the same instant, or wait again if the host
//     pushed back again.
//
// A pause comes from an attempt's outcome, and the gate holds the host's
// other calls only when the outcome speaks for the host:
//
//   - a pause reported with resilience.ReportPushback, whatever the
//     outcome (the HTTP adapter reports an IETF RateLimit field with no
//     quota left and no partition key, so that a client paces itself
//     before it is refused), or a retryable failure whose
//     resilience.RetryAfter concerns the whole dependency
//     (resilience.PushbackDependency, the scope of
//     resilience.MarkRetryAfter: an open breaker keeping its callers, an
//     operation's own pushback), closes the gate at once;
//   - one request's pushback (resilience.PushbackRequest: an HTTP 429 or
//     503 with Retry-After, a gRPC pushback trailer) is evidence, not
//     proof, since a server may limit one tenant or one endpoint among
//     many, or shed part of its load: it closes the gate when at least
//     half of the host's last 20 answers were such pushback, or when the
//     gate is closed already or its probe is out. Otherwise only the call
//     that received it waits, in its own retry;
//   - a pushback that concerns one call alone (resilience.PushbackCall:
//     an earlier attempt still running under the call's idempotency key)
//     never closes the gate.
//
// A pause is capped by [WithMaxPushback], by default the retry
// policy's default maximum delay (10s), so that the gate never holds a call
// longer than a retry would have waited.
//
// A host that cannot take the held calls when they follow the probe pushes
// back again, and the gate closes again. The gate reads the outcome, not its
// source: a retryable delay from a policy inside it counts too (a breaker
// made to keep callers until its next probe closes the gate until then).
// A closed gate whose key is forgotten because the registry is full
// forgets its pause.
//
// Place the gate inside the retry and outside the breaker:
// resilience.Chain(timeout.New(total), retry.New(), pushback.New(),
// breaker.NewKeyed(), timeout.New(perAttempt)). The retry then meets the
// gate on every attempt, and a call turned away is not retried, since the
// retry does not start a wait its deadline cannot cover. The standard
// pipeline (package standard) puts it there by default.
//
// # Telemetry
//
// The gate closing (closed), a call waiting at it (held), a call turned
// away (rejected) and the gate opening again for all (reopened) are counted
// in resilience.events with resilience.policy=pushback and added as span
// events (resilience.pushback.closed, ...) to the recording span in the
// call's context. The time calls waited before going through is recorded
// in resilience.pushback.wait.duration. The module's docs/telemetry.md
// lists every instrument.
package pushback
