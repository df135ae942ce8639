// Package shed protects a server from overload: it bounds the requests
// that run at once, queues a few more for a short time, and sheds the
// rest at once with an answer that tells the client when to come back,
// instead of queueing without bound until every request is late.
//
// A [Shedder] holds the state, shared by every handler it protects;
// [Middleware] applies it to an http.Handler, and package resiliencegrpc's
// ShedUnaryServerInterceptor and ShedStreamServerInterceptor to a gRPC
// server:
//
//	s := shed.New(shed.Fixed(64)) // 64 requests at once; 100 more wait up to 50ms
//	h := shed.Middleware(s,
//		shed.WithHealthCheck(func(r *http.Request) bool { return r.URL.Path == "/healthz" }))(mux)
//	// On shutdown: stop admitting, then wait for the requests in flight.
//	err := s.Drain(ctx)
//
// # The bound
//
// The bound is a [Limiter]: [Fixed] is a fixed number of slots. An
// adaptive limiter, which moves its bound with the latency it observes,
// implements the same interface (TryAcquire and Release), so that moving
// from a fixed bound to an adaptive one is a one-line change in New.
//
// # Priorities
//
// Each request has a [Priority]: [Critical], [Default] or [Sheddable].
// [Middleware] reads it from the [PriorityHeader] header
// ("Resilience-Priority: critical"), the gRPC interceptors from the
// metadata key "resilience-priority". The value comes from the client and
// is not trusted: an unknown, empty or oversized value is Default, never
// an error. Servers that do not trust their clients to rank themselves
// set their own rule ([WithPriority]).
//
// When every slot is taken, a request waits in a queue of at most
// [DefaultMaxQueue] requests for at most [DefaultMaxWait] ([WithQueue]).
// A freed slot goes to the oldest critical request waiting, then to the
// oldest default one, then sheddable. A request that finds the queue full
// pushes out the newest waiting request of a lower priority, which is
// shed; with none lower, it is shed itself. So a critical request never
// waits behind a lower one, a full queue sheds its sheddable requests
// before it turns a critical one away, and a critical request is shed
// only when the queue is full of critical requests or its own wait ran
// out. Health checks are
// never shed and never wait ([WithHealthCheck]; for gRPC the health
// service's Check, Watch and List by default).
//
// # What a shed request gets
//
// Over HTTP, 503 Service Unavailable with a Retry-After and an
// application/problem+json body naming the reason; over gRPC, Unavailable
// with the grpc-retry-pushback-ms trailer. The delay is honest: the time
// the queue would take to drain at the rate requests finished over the
// last second or two, rounded up to whole seconds, at least 1s and at
// most [DefaultMaxRetryAfter] ([WithMaxRetryAfter]). The library's own
// clients honour it: the shed call's retry waits the delay, and once half
// of the server's last 20 answers to a client were sheds, its pushback
// gate holds every call to the server until the delay ends, instead of
// each call finding out by itself (a shed answer to a call with an
// idempotency key concerns that call alone: see package pushback).
//
// The error behind a shed is a [*RejectedError] (matching [ErrShed]) with
// its [Reason]: [ReasonLimit], [ReasonQueueFull], [ReasonQueueTimeout],
// [ReasonPriority], [ReasonDraining] or [ReasonCanceled].
//
// # Shutdown
//
// [Shedder.Drain] stops admitting (what arrives is shed with
// ReasonDraining; over HTTP with Connection: close), sheds the queue, and
// waits for the requests in flight, or for its context. Call it before
// http.Server.Shutdown or grpc.Server.GracefulStop, which then have
// nothing left to wait for.
//
// # Order of middleware
//
// Outermost first: load shedding, rate limit, idempotency, handler. A
// request shed never reaches a quota or an idempotency record.
//
// # Telemetry
//
// Every request shed is counted in resilience.events (resilience.policy
// "shed", resilience.event "rejected", with resilience.reason and
// resilience.priority) and added as a span event to the request's span;
// so is every request that had to queue ("queued"). The waits of queued
// requests that were admitted go to resilience.shed.wait.duration; the
// requests in flight and queued are reported at each collection. See
// docs/telemetry.md.
package shed
