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
// request anyway with idempotency.WithFailOpen. Timeouts are the client's:
// set redis.Options.ReadTimeout and WriteTimeout to bound how long a
// request waits for the store.
package redisstore
