// Package redisstore is an idempotency.Store on Redis, shared by every
// instance of a service, built on github.com/redis/go-redis/v9.
//
// Each key is one Redis string, written only by Lua scripts that run
// atomically on the server: a reservation is made with SET NX PX (so that
// it expires with its lease if its holder dies), under a fencing token
// from INCR on a companion key; completing or releasing it checks the
// token first, so a holder whose lease ran out cannot overwrite or drop a
// newer reservation. The two keys of an idempotency key share a hash tag
// ("{...}"), so the store works on Redis Cluster as on a single server.
//
// Errors (Redis down, a timeout) are returned, never panicked; the
// idempotency Guard turns them into 503 Service Unavailable, or runs the
// request anyway with idempotency.WithFailOpen. Timeouts are the client's,
// and go-redis's defaults are long for a request path: with them (a 3
// second read timeout, 3 retries), a Redis that accepts connections but
// does not answer held a keyed request 10 seconds before its 503. Bound
// the wait with the client's options (DialTimeout, ReadTimeout,
// WriteTimeout, PoolTimeout of a few hundred milliseconds, and MaxRetries:
// -1 or 1), as the example does: a keyed request then fails fast with a
// 503 that says the store did not answer in time, and the client's retry,
// or its caller, decides what to do.
package redisstore
