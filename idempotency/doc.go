// Package idempotency makes retrying an unsafe call (an HTTP POST, a gRPC
// method that is not idempotent) safe, at both ends, with idempotency keys
// as the IETF httpapi draft "The Idempotency-Key HTTP Header Field"
// describes them.
//
// # Client: Keyer
//
// A [Keyer] is a resilience.Policy that gives each unsafe call without a
// key a new random key ([NewKey]), once per call and the same on every
// retry; the call becomes retryable. resiliencehttp sends the key as
// Idempotency-Key: "..." (a Structured Field String; see [WithBareKeys]),
// resiliencegrpc as idempotency-key metadata. A key the caller set is kept.
// Stamping is opt-in and scoped to the hosts or gRPC methods that
// deduplicate (standard.WithIdempotencyKeys in the Standard presets), and
// sits outside retry:
//
//	timeout (total) → ratelimit → idempotency key → retry → breaker → ...
//
// Stamping a key also changes what net/http's own Transport does: it
// resends a request that carries an Idempotency-Key header (whatever its
// method) when a reused keep-alive connection breaks before any response
// byte, as it does for a GET (Request.isReplayable in net/http).
//
// # Server: Middleware, Guard and Stores
//
// [Middleware] wraps an http.Handler, and resiliencegrpc's
// IdempotencyServerInterceptor a gRPC server, so that each request with a
// key runs at most once per key and principal: a repeat gets the recorded
// response (marked Idempotent-Replayed: true), a repeat while the first
// runs a 409, a repeat with another payload a 422. [Guard] is the
// protocol-neutral core both use. Reservations and records live in a
// [Store]: [MemoryStore] for one process, package redisstore for a fleet
// that shares one Redis.
//
// # Guarantees
//
//   - While a record lives (24 hours by default), a request with a key
//     runs at most once per principal and key, across every instance that
//     shares the store; the others get its response or a conflict.
//   - A request whose instance died runs again once its lease runs out; a
//     request that outlives its lease cannot record over the one that took
//     over (fencing tokens).
//   - A server failure (5xx, a panic, a failure status in gRPC) or a
//     response above the size bound is not recorded: the key is released
//     and a retry runs again.
//   - When the store fails, requests fail with 503 (fail closed) unless
//     [WithFailOpen] says to run them without deduplication.
//
// What it does not guarantee: a handler that performs its side effect and
// then fails with a 5xx, or panics, is run again by a retry. Make such a
// side effect idempotent itself, or answer with a 4xx, which is recorded.
// And a response that could not be recorded because the store failed (or,
// for the memory store, was full) just after the handler ran is counted
// (store_error, reason complete): its key stays reserved until the lease
// runs out, and a retry after that runs the request again.
//
// # Telemetry
//
// Each decision is counted in resilience.events with resilience.policy
// "idempotency" (stamped, replayed, conflict, mismatch, rejected,
// store_error, released; the last three with resilience.reason) and added
// as an event ("resilience.idempotency.<event>") to the recording span in
// the request's context. See docs/telemetry.md.
package idempotency
