// Package adaptive bounds how many calls to a dependency run at once, with
// a limit that follows the dependency's latency.
//
// A [Limiter] is a resilience.Policy. Each call takes a slot and gives it
// back when its result is done, as with a bulkhead, but the number of slots
// moves: it shrinks when the dependency starts to queue and grows back when
// it stops. A dependency that is merely slower than the load it is offered
// thus gets only the calls it can serve at a short queue; the rest are
// turned away at once with a [*LimitError] (matching [ErrLimited]), instead
// of waiting in the dependency's queue until their callers give up while
// the dependency still does their work. A [Keyed] limiter keeps one limiter
// per host, in a bounded registry that forgets idle hosts.
//
// # How the limit moves
//
// Overload shows as queueing (Little's law): the latency of even the
// fastest calls rises, with the calls in flight at the limit. The limiter
// looks for exactly that. Every tenth of a second (and at least five
// calls), it compares the fastest call of the window with the baseline, the
// fastest call it has seen:
//
//   - fastest call above 1.5 times the baseline (and more than 2ms above
//     it, so that the scheduling jitter of a client calling a dependency
//     that answers in a fraction of a millisecond is not a queue), limit
//     reached in the window: the limit is cut in proportion (at most
//     halved per window), plus √limit of headroom so that the dependency
//     never idles;
//   - limit not reached: the limit is not cut (latency that rises while
//     the limiter has room to spare is not a queue it caused), but a limit
//     far above demand decays, a tenth of the way per window, toward the
//     peak in flight plus four: every call a limit lets in at the onset of
//     an overload joins the dependency's queue, so an unused limit is not
//     a safe one.
//
// A call that finds the limit reached raises it by one instead of being
// turned away, as long as neither the last window nor the last call to
// come back showed a queue: a burst of parallel calls, or a slow tail
// filling the slots, on a dependency that keeps up is carried at once, and
// the limit grows back as soon as the dependency recovers. At the onset of
// an overload, the first call to come back from the dependency's queue
// stops the growth.
//
// The limit stays between a minimum and a maximum ([WithLimits]), starting
// from [WithInitialLimit].
//
// What the limiter does not read as overload, by design:
//
//   - a slow tail: the window's fastest call, not an average or a high
//     percentile, is compared, so a fifth of the calls taking seconds on
//     an idle dependency leaves the limit alone (it grows to carry the
//     extra calls in flight);
//   - the caller's own cancellation, and failures (the dependency's errors
//     say nothing of its queue): they are not timed. A call that ran out of
//     time (context.DeadlineExceeded) is timed as at least that long;
//   - a pause of its own process (stopped, starved of CPU, a VM migrated):
//     a limiter with calls in flight that sees no call start or end for a
//     second takes it for a pause, and the calls that span it are not
//     timed; so does a limiter with none in flight whose calls started 20
//     times a second or more, if a backlog reaches the limit within a
//     tenth of a second of the silence's end. A busy limiter sees calls start and end every few
//     milliseconds, so a second of silence with calls in flight means it
//     was not running; the monotonic clock alone cannot tell, since it
//     runs on while the process is stopped. For as long again as the pause
//     lasted (at most 10 seconds) the limiter then lets every call in,
//     untimed: the calls that fell due during the pause arrive at once,
//     and nothing it knows says the dependency cannot take them;
//   - a long incident: the baseline rises only in windows where the limit
//     was not reached, so the limiter's own queueing never raises it.
//     When the limit has been held down for 30 seconds, the limiter runs
//     one probe window at the minimum limit and takes its fastest call as
//     the baseline: during an overload that finds the old baseline again
//     (the queue the probe drains was the limiter's), while for a
//     dependency that became slower for good it finds the new one, so the
//     limit can grow back.
//
// # Where it goes
//
// Place the limiter where a bulkhead would go: inside the retry and the
// circuit breaker, outside the per-attempt timeout, so that a per-attempt
// timeout is timed as a slow call. [LimitError] is marked as throttled
// (resilience.KindThrottled): a breaker outside the limiter does not count
// it, and a retry outside it waits its backoff before trying again. A slot
// is held until the result is done: for an HTTP response, until its body
// is read to the end or closed (see resilience.Hold). The latency sample is
// taken when the operation returns (an HTTP response's headers), so a
// caller that reads a body slowly does not look like a slow dependency.
//
// Hedges are extra work for one call: an overloaded dependency would do
// each twice. [WithSpeculative] says which calls are hedges; the limiter
// lets them in only while the dependency shows no queue.
//
// # Telemetry
//
// resilience.adaptive.limit reports the current limit at every collection
// (per host for a [Keyed] limiter keyed by target, summed for one keyed with
// [WithKey] or [WithoutServerAddress]; evicted keys drop out). Calls turned
// away are counted in resilience.events (event rejected, with
// resilience.reason: limit, queue_full, queue_timeout or speculative) and
// added as the span event resilience.adaptive.rejected;
// resilience.adaptive.wait.duration records the waits of queued calls that
// got a slot. The module's
// docs/telemetry.md lists every instrument.
package adaptive
