// Package bulkhead bounds how many calls to a dependency run at once.
//
// A [Bulkhead] is a resilience.Policy built on golang.org/x/sync/semaphore.
// Each call takes one of its slots and gives it back when its result is
// done. When all slots are taken a call waits up to a maximum wait
// ([WithMaxWait]) and then fails with [ErrFull]; with the default wait of
// zero it fails at once. A slow or hung dependency thus ties up a bounded
// number of the caller's goroutines and connections, and the rest of the
// service keeps working.
//
// A slot is held for as long as the dependency is busy with the call, not
// merely until the operation returns: for an HTTP response, until its body
// is read to the end or closed; for a gRPC stream, until it ends (see
// resilience.Hold). A caller that never closes a response body never gives
// its slot back, exactly as it would never give back its connection with
// plain net/http.
//
// [ErrFull] is marked as throttled (resilience.KindThrottled): a retry
// policy outside the bulkhead may try again after its backoff, and a
// circuit breaker outside it does not count it as a failure of the
// dependency. Place the bulkhead inside the breaker and outside the
// per-attempt timeout, so that the wait for a slot does not eat into the
// attempt's time.
//
// A [Keyed] bulkhead keeps one bulkhead per key, by default the call's
// target host, in a bounded registry that forgets idle keys.
//
// # Telemetry
//
// resilience.bulkhead.in_flight reports the calls holding a slot at every
// collection (per host for a [Keyed] bulkhead keyed by target, summed for
// one keyed with [WithKey]; evicted keys drop out), and
// resilience.bulkhead.limit the slots beside them, alike, so that
// in_flight / limit is the saturation;
// resilience.bulkhead.wait.duration records the waits of calls that found
// the bulkhead full; rejected calls are counted in resilience.events and
// added as the span event resilience.bulkhead.rejected. The module's
// docs/telemetry.md lists every instrument.
package bulkhead
