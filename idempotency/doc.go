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
// key runs at most once per key and principal (see Guarantees for what
// exactly holds): a repeat gets the recorded response (marked
// Idempotent-Replayed: true), a repeat while the first runs a 409, a
// repeat with another payload a 422. A server stacks it inside load
// shedding and rate limiting, next to the handler:
//
//	load shedding → rate limit → idempotency → handler
//
// [Guard] is the protocol-neutral core both use. Reservations and records live in a
// [Store]: [MemoryStore] for one process, package redisstore for a fleet
// that shares one Redis.
//
// # Guarantees
//
// What holds, exactly, for requests with one key and principal on every
// instance that shares a store, while the key's record lives (24 hours by
// default):
//
//   - Two runs never overlap: while one request holds the key (its
//     reservation's lease, 1 minute by default, has not run out), the
//     others get its record once it is done, or a conflict meanwhile.
//   - Once a response is recorded, the request never runs again: every
//     repeat gets the record.
//   - A request runs again only when its run left no record: it answered
//     with a status that is not recorded (a server failure, or "not
//     processed": see [Middleware]), panicked, or was too large to record
//     (the key is then released at once); or its record could not be
//     written because its instance died, or the store failed or was full,
//     between the handler's end and the record (the key is then free
//     again once the lease runs out, and the next request runs).
//   - A request that outlives its lease may be run again by a retry, and
//     cannot then record over the one that took over (fencing tokens).
//   - When the store fails, requests fail with 503 (fail closed) unless
//     [WithFailOpen] says to run them without deduplication.
//
// So "at most once" holds for runs that leave a record: a handler's side
// effect is done again when its run left none. A handler that
// performs its side effect and then fails with a 5xx, or panics, or whose
// instance dies before recording, is run again by a retry. Make such side
// effects idempotent themselves (a unique constraint on the key, say), and
// answer with a status that is recorded once the effect is done. Set the
// lease above the longest a handler may run ([WithLease]).
//
// # Telemetry
//
// Each decision is counted in resilience.events with resilience.policy
// "idempotency" (stamped, replayed, conflict, mismatch, rejected,
// store_error, released; the last three with resilience.reason) and added
// as an event ("resilience.idempotency.<event>") to the recording span in
// the request's context. See docs/telemetry.md.
package idempotency
