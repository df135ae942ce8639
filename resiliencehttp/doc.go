// Package resiliencehttp applies resilience policies to HTTP clients.
//
// [NewTransport] wraps an http.RoundTripper so that every request runs
// under a chain of policies:
//
//	client := &http.Client{Transport: resiliencehttp.NewTransport(nil,
//		timeout.New(30*time.Second), // the whole call
//		retry.New(),                 // up to 4 attempts, jittered backoff
//		timeout.New(10*time.Second), // each attempt
//	)}
//
// [Standard] builds the transport on the standard pipeline instead, with
// safe defaults; package standard documents its order and every default.
//
// The transport keeps the whole http.RoundTripper contract: it never
// modifies the caller's request, always closes the request body, and returns
// a nil error for any response it hands back.
//
// # Outcomes
//
// Each attempt's result is classified for the policies (see
// resilience.Kind):
//
//   - transient: transport errors (except certificate errors, an
//     unsupported scheme and malformed requests, which are permanent) and
//     the statuses 408, 500, 502, 503 and 504;
//   - throttled: 429;
//   - permanent: every other 5xx, such as 501;
//   - rejected: every other 4xx;
//   - success: everything else.
//
// A Retry-After header on a 408, 429 or 5xx response, in delta-seconds or
// in any HTTP-date form, becomes the server's pushback; a date in the past
// means "retry now". A malformed value is ignored. The retry policy waits
// it out for the call that received it; what it says about the host's
// other calls (resilience.PushbackScope, read by the pushback gate) depends
// on the answer:
//
//   - a 429, a 503 and any other status's is about the request
//     (resilience.PushbackRequest): a server may limit one tenant or one
//     endpoint, or shed part of its load, so the gate holds the host's
//     other calls only when most of the host's recent answers were such
//     pushback;
//   - a 503 to a request with an idempotency key is the call's alone
//     (resilience.PushbackCall): the server's idempotency layer answers
//     503 when its store is down, to the keyed requests, while it still
//     serves every request without a key.
//
// A 409 Conflict with Retry-After to a request with an idempotency key is
// the server saying that an earlier attempt with the same key is still
// running (idempotency.Middleware answers so): it is throttled, about the
// call alone, and the retry policy asks again with the same key once the
// delay has passed, until it gets the first attempt's recorded response
// (such asks spend none of the retry policy's attempts nor its budget: up
// to ten of them, within the call's deadline);
// a hedging policy never lets it win over an attempt still running. A 409
// without Retry-After is the server's answer (rejected).
//
// A response's outcome is its status, known at its headers: a breaker
// counts it when the attempt returns (resilience.Call.OutcomeAtEnd is left
// false), and a body that fails after a 200 is the reader's error, not a
// failure of the dependency that the breaker counts.
// A response of any status whose RateLimit field (IETF httpapi RateLimit
// header fields, a Structured Field List such as "burst";r=0;t=30, parsed
// with github.com/dunglas/httpsfv) names a quota with no units left (r=0)
// that covers every request to the host reports a pause of t seconds
// (resilience.ReportPushback; the longest t if several quotas are
// exhausted). The pushback gate of the standard pipeline then sends
// nothing more to that host until the pause ends, so that the client paces
// itself instead of spending calls on 429s. A quota with a partition key
// (the pk parameter, such as "tenant";r=0;t=30;pk=:dGVuYW50LWE=:, as
// ratelimit.Middleware sends for a keyed quota) covers one partition's
// requests only, and holds none of the host's calls: the partition's next
// request is answered 429 with Retry-After, which its own retry honours,
// and which counts, as every 429 does, toward the evidence above (a client
// whose recent requests are mostly one throttled partition's is paced as a
// whole). A field over 4 KiB, or one that does not parse, is ignored.
//
// When retries run out on a failed response, the caller gets that last
// response with a nil error, as it would without the transport, not a
// synthetic error. Every response a policy discards is drained (up to
// [MaxDrain] bytes and for at most [MaxDrainTime]) and closed, so its
// connection is reused, and a body that stalls never delays the next attempt
// by more than MaxDrainTime. A call turned away before it reached the host
// (a closed pushback gate, an open breaker), or whose last response a
// policy had already drained (a retry that found no time left for another
// attempt), gets the policy's error. A failed response whose body is
// application/problem+json (RFC 9457) of a known length up to [MaxProblem]
// bytes gives the policies, and so that error, the server's title and
// detail ([StatusError]); the caller still reads the whole body.
//
// # Which requests are retried
//
// GET, HEAD, OPTIONS, TRACE, PUT and DELETE are idempotent. POST, PATCH and
// any other method are idempotent only when the request carries an
// Idempotency-Key (or X-Idempotency-Key) header; otherwise the retry policy
// sends them once. An idempotency.Keyer among the policies
// (standard.WithIdempotencyKeys) gives such a request in its scope a key of
// its own, sent as Idempotency-Key on every attempt, which makes it
// retryable when its body has GetBody (http.NewRequest sets it for
// in-memory bodies); the caller's request is not modified. The key is on
// the request the call's last attempt sent, the response's Request:
// resp.Request.Header.Get("Idempotency-Key") recovers it, to ask the
// server about the call later or to send it again with the same key. A
// call that ends with an error and no response gives no key back; a
// caller who needs the key in every case sets its own.
//
// A request body is replayed on each attempt through Request.GetBody. A body
// without GetBody is read into memory, up to [Transport.MaxBodyBuffer]
// (1 MiB by default); a larger one is streamed once and the request is not
// retried (retry.Error gives the reason when the attempt failed with an
// error).
//
// # Response bodies and held resources
//
// A response body is read after RoundTrip returns. Resources that policies
// took for the attempt that produced it stay taken until the body is read to
// the end or closed: a per-attempt timeout does not cut off a body that
// arrived in time, while the caller's own deadline and a total timeout
// (one outside the retry policy) still bound reading it, as
// http.Client.Timeout does; and a bulkhead slot is not freed before the
// body is done. A long download needs a total timeout that leaves room for
// it. Close
// every response body, as net/http requires: a body never closed holds its
// resources, exactly as it would hold its connection with plain net/http.
//
// A response that switches protocols (101 Switching Protocols, as for a
// WebSocket or h2c) is the exception. Its body is the connection itself,
// an io.ReadWriteCloser, and reaches the caller untouched, with its Write
// and CloseWrite. The call ends with the switch, as the HTTP exchange
// does: when RoundTrip returns, what the attempt took is released (a
// bulkhead slot, a breaker's probe counted as a success), and neither a
// per-attempt nor a total timeout bounds the connection, which net/http
// too stops watching the request's context for. A connection that lives
// for hours would otherwise hold a bulkhead slot as long. Bound it
// yourself (SetDeadline on a connection of your own dialer, or your
// protocol's own pings), and close it when done. An attempt that switched
// and that a policy throws away (a losing hedge) has its connection closed.
package resiliencehttp
