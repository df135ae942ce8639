// Package ratelimit spaces a client's calls to a dependency at a steady
// rate.
//
// A [Limiter] is a resilience.Policy built on golang.org/x/time/rate: a
// token bucket that refills at a rate of r calls per second and holds up to
// burst calls. A call that finds a token goes through at once. One that
// does not either waits for its turn, up to a maximum wait
// ([WithMaxWait]), or fails at once with a [*LimitedError] that matches
// [ErrLimited] and says how long it would have had to wait. A call turned
// away does not use up the rate.
//
// This is the client's own limit, kept in memory: it keeps a caller within
// a dependency's quota, or keeps a batch job from flooding a shared
// service. It does not coordinate between processes.
//
// The error of a call turned away is marked as throttled
// (resilience.KindThrottled) with the wait it would have needed
// (resilience.RetryAfter), so a retry policy outside the limiter waits
// exactly that long. The recommended order places the limiter outermost:
// a call waits for its turn before its total timeout starts, and one call
// takes one turn however many attempts it makes. To limit every attempt,
// retries included, place it inside the retry policy instead.
//
// A [Keyed] limiter keeps one limiter per key, by default the call's
// target host, in a bounded registry that forgets idle keys.
//
// # Server side
//
// A server limits the requests it accepts with an [Admitter]: Admit(ctx,
// key) takes one request's worth of a key's [Quota] (Limit requests per
// Window, all of which may come at once) and returns a [Decision]. [Local]
// keeps its state in memory, one bucket per key in a bounded registry; the
// ratelimit/redisrate package shares one quota between all the replicas of
// a service through Redis.
//
// [Middleware] puts admitters in front of an http.Handler: a request turned
// away gets 429 Too Many Requests with Retry-After, and every response
// carries the IETF RateLimit-Policy and RateLimit fields
// ([PolicyHeader], [StateHeader]) so that clients can pace themselves.
// The items of a quota kept per key name their partition with the draft's
// pk parameter, a digest of the key; a quota shared by every request
// ([Global]) sends none. [WithLimit] adds quotas (per tenant and per
// endpoint: a request needs all). [Enforce] makes an admitter a
// resilience.Policy, which the gRPC server interceptors of resiliencegrpc
// take: ResourceExhausted and a pushback trailer.
//
// Keys often come from clients: admitters keep at most [MaxKeyLen] bytes
// per key ([BoundKey]), and [Local] at most [WithMaxKeys] keys, each kept
// until its bucket is full again unless the bound is reached.
//
// # Telemetry
//
// resilience.ratelimit.wait.duration records the waits of calls that found
// no token; rejected calls are counted in resilience.events and added as
// the span event resilience.ratelimit.rejected, under the policy name
// ratelimit. On the server side ([Middleware], [Enforce], a limiter in a
// gRPC server interceptor) the policy name is ratelimit_server, so that a
// dashboard tells a service throttling itself from a service throttling its
// clients: every request is counted as allowed or rejected (and, for a
// shared limiter, store_error, degraded and recovered), each also a span
// event (resilience.ratelimit_server.rejected, ...). The module's
// docs/telemetry.md lists every instrument.
package ratelimit
