// Package redisrate shares a server-side rate limit between the replicas of
// a service through Redis. Its [Limiter] is a ratelimit.Admitter, for
// ratelimit.Middleware (HTTP) and ratelimit.Enforce (the gRPC server
// interceptors).
//
// # Exact mode
//
// Each decision runs one Lua script in Redis: the generic cell rate
// algorithm (GCRA), which stores one number per key, the time at which the
// key's quota is whole again. The script reads the time from Redis itself
// (TIME), so the replicas' clocks do not matter, and sets the key to expire
// at that time, so idle keys vanish. Every replica sees the same state: the
// replicas together admit the quota, exactly. The cost is one script run
// per request. Decisions a replica takes concurrently share round trips:
// while one pipeline is in flight, the decisions that arrive queue up and
// go together in the next (group commit), each still its own atomic
// script; a lone decision goes at once. A decision waits for Redis's answer
// once it is queued, bounded by the client's timeouts rather than by its
// context, since a batch must not be abandoned halfway.
//
// Keys are named prefix + quota name + ":{" + key + "}": the braces are a
// Redis Cluster hash tag, and each script touches one key. A key longer
// than ratelimit.MaxKeyLen, or holding braces, is replaced by its SHA-256
// digest, so client-chosen keys cost a bounded amount of Redis memory.
//
// # Leasing mode
//
// With [WithLease](n, maxAge), a replica takes up to n requests' worth of a
// key's quota in one script run and spends it locally, so Redis sees about
// one request in n. The quota is taken when leased: over any window the
// replicas together may admit up to one lease (n) per replica beyond the
// quota, since a lease taken at the end of one window can be spent in the
// next; a lease is dropped, unspent, after maxAge, which admits fewer. Keep
// n small next to the quota.
//
// # When Redis is down
//
// An error from Redis (other than the caller's own cancellation) starts an
// outage. [WithMode] chooses what happens then:
//
//   - [Degrade], the default: each replica decides alone, under a quota of
//     Limit / replicas with the same window, so that together they admit
//     about the quota rather than once per replica. The replica count is
//     [WithReplicas], or else the number of replicas whose heartbeats were
//     seen in Redis before the outage (each replica records one per
//     [WithHeartbeat] interval, on a request, in a sorted set scored by
//     Redis time). The share is a token bucket per key, kept across
//     outages: a Redis that flaps does not hand out a fresh share each
//     time it goes away. It is dropped once a window has passed since its
//     last decision (its buckets are full again by then), and keeps the
//     replica count it was set up with until then. Redis does not
//     know what the shares admitted, nor the shares what Redis admitted, so
//     over one window a key may get up to its quota through Redis and the
//     replicas' shares locally: about twice the quota at most, when the
//     replica count is right.
//   - [FailOpen]: every request is admitted, without RateLimit headers.
//   - [FailClosed]: every request fails with ratelimit.ErrUnavailable (503
//     from the middleware, Unavailable over gRPC).
//
// During an outage one request per [WithProbeInterval] tries Redis; the
// first that gets an answer ends the outage. Nothing is restarted, and no
// goroutine is started. Each failed Redis call is counted as a store_error
// event and each decision taken without Redis as a degraded event, both
// also span events (resilience.ratelimit_server.store_error, .degraded);
// the end of an outage is a recovered event. Their resilience.policy is
// ratelimit_server, as for every server-side rate-limit decision.
//
// How long a request waits on an unreachable Redis before falling back is
// set on the go-redis client: DialTimeout, ReadTimeout, MaxRetries,
// DialerRetries.
package redisrate
