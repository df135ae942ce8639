// Package resiliencegrpc applies resilience policies to gRPC clients and
// servers. It is the only package of the module that imports gRPC.
//
// A [Client] holds a policy and provides a unary and a stream client
// interceptor that run every call under it:
//
//	c := resiliencegrpc.NewClient(resilience.Chain(
//		timeout.New(30*time.Second), // the whole call
//		retry.New(),                 // up to 4 attempts, jittered backoff
//		timeout.New(10*time.Second), // each attempt
//	), resiliencegrpc.WithIdempotentMethods("/pkg.Users/Get", "/pkg.Catalog/*"))
//	conn, err := grpc.NewClient(addr, creds,
//		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
//		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
//
// [Standard] builds a Client on the standard pipeline, the same as the HTTP
// transport's (package standard documents its order and every default),
// and takes the Client's options (WithIdempotentMethods, ...) with the
// pipeline's ([WithPipeline]). [UnaryClientInterceptor] and [StreamClientInterceptor] are
// shorthands for a Client without options. The options that describe the
// calls (which are idempotent, how much of a stream to keep for replay)
// are the Client's, not a policy's, hence the type.
//
// Each call runs with a context that describes it (resilience.CallFrom):
// its Target is the authority set by grpc.CallAuthority, or else the
// endpoint the connection's target names, without the resolver's scheme
// and authority ("api:443" for "dns:///api:443", "orders" for a custom
// resolver's "orders:///orders", "/tmp/s" for "unix:///tmp/s"), and its
// Method the full method name, so that per-target policies (a breaker per
// dependency) key by it, and server.address never holds a URL.
//
// # Outcomes
//
// Each attempt's status is classified for the policies (see
// resilience.Kind):
//
//   - Unavailable is transient: retried, counted by breakers;
//   - ResourceExhausted is throttling, retried after the server's pushback,
//     when the server sent one; without it, it is a rejection (not retried,
//     not counted);
//   - DeadlineExceeded is transient while the caller's context is alive (a
//     per-attempt or total timeout expired);
//   - any status, DeadlineExceeded and Canceled included, once the
//     caller's own context ended (it canceled, or its deadline passed) is
//     the caller giving up (resilience.KindCanceled): never retried, never
//     counted by a breaker;
//   - Aborted on a call that carries an idempotency key is the server
//     saying an earlier attempt with the key still runs
//     ([IdempotencyServerInterceptor] answers so): throttling of the call
//     alone, retried with the same key after the server's pushback (or the
//     retry's backoff without one), never counted, never closing the
//     pushback gate; a hedging policy never lets it win over an attempt
//     still running. Without a key, Aborted is a rejection;
//   - Unknown, Internal and DataLoss are permanent: never retried, but
//     counted by breakers, since a server failing every call with them is
//     down;
//   - every other code is a rejection, an answer for the caller to handle:
//     never retried, never counted.
//
// # Pushback
//
// A server asks a client to wait with the trailer grpc-retry-pushback-ms
// ([PushbackTrailer]), in milliseconds. On Unavailable or ResourceExhausted,
// a valid value replaces the retry policy's computed delay, capped by the
// policy's maximum delay; a negative or malformed value, or more than one,
// means do not retry. The cap departs from gRPC's own retry, where the
// server's value wins: here no server can hold a client longer than its
// policy allows.
//
// A pushback is an answer to one call (resilience.PushbackRequest): the
// pushback gate of the standard pipeline holds the target's other calls
// when most of its recent answers pushed back, not on one call's pushback,
// since a server may limit one tenant or one method among many. A call
// with an idempotency key answered Unavailable with a pushback may have
// met the server's idempotency store down, which the calls without a key
// never reach: its pushback concerns that call alone
// (resilience.PushbackCall).
//
// # gRPC's built-in retry
//
// grpc-go retries by itself when a service config (the client's, or one
// sent by the name resolver) has a retryPolicy for the method. Under this
// package's interceptors the two multiply: 4 attempts of ours, each made
// of up to 4 of grpc-go's, reach the server 16 times. Dial with
// grpc.WithDisableRetry() on connections that use a retry policy here.
//
// # Which calls are retried
//
// A call is retried only if it is idempotent: its method is declared so
// ([WithIdempotentMethods], [WithIdempotentIf]), or it carries an
// idempotency key in its outgoing metadata ([IdempotencyKey]), which the
// server is expected to deduplicate by. Other calls are sent once; the
// other policies (timeouts, breaker, bulkhead) still apply to them. An
// idempotency.Keyer among the policies (standard.WithIdempotencyKeys) gives
// the unary calls in its scope a key of their own, sent as [IdempotencyKey]
// on every attempt, which makes them retryable; a stream that was not
// idempotent when it started is still sent once. The server side is
// [IdempotencyServerInterceptor]. A stamped key is not given back to the
// caller (unlike HTTP's resp.Request): a caller who needs the key, to ask
// about the call later or to send it again itself, sets its own with
// metadata.AppendToOutgoingContext(ctx, IdempotencyKey, key), which the
// Keyer keeps.
//
// # Errors
//
// Every error the interceptors return is a status error (status.FromError
// and status.Code read it). An attempt's status is returned unchanged when
// no policy added to it. Otherwise the status is the attempt's, or the one
// a policy's own error maps to: an open breaker, a full bulkhead or an
// adaptive concurrency limit reached gives Unavailable, a rate limit ResourceExhausted, a policy's timeout
// DeadlineExceeded, the caller's cancellation Canceled. Such errors wrap the
// policy's error, so errors.Is still matches breaker.ErrOpen,
// bulkhead.ErrFull, adaptive.ErrLimited, ratelimit.ErrLimited, timeout.ErrTimeout,
// context.Canceled and the like, and errors.As finds *retry.Error.
//
// # Call options
//
// A unary call's options go to each of its attempts, except those that
// report on the call when it ends: grpc.Header, grpc.Trailer, grpc.Peer
// and grpc.OnFinish. As with gRPC's own retry, they belong to the call:
// the header, trailer and peer are those of the attempt whose result the
// caller gets (the last attempt sent, or a hedging policy's winner),
// written once the policies returned, and left untouched when no attempt
// was sent (a breaker or rate limit turned the call away); OnFinish runs
// once, with the error the caller gets. No attempt writes into the
// caller's variables while another may still run.
//
// # Streams
//
// A stream is retried only before it commits: before any response header
// or message has been received. Until then, the messages sent are kept, up
// to [WithMaxReplayBuffer] (1 MiB by default), and replayed on each new
// attempt, followed by CloseSend if the caller closed; a stream that sent
// more is not retried, and its error matches [ErrNotReplayable]. While an
// attempt that will be retried winds down, the caller's RecvMsg, Header
// and SendMsg wait for the next attempt instead of failing. Once a stream
// has committed it is never retried, so no message reaches the caller
// twice.
//
// As with gRPC's own retry, the stream's Context commits it to its current
// attempt: from then on it is not retried, and the context, done when the
// stream ends, lives as long as the stream. An interceptor outside this
// one that asks for the context before the stream commits (to read the
// peer, say) turns the stream's retries off, as it does grpc-go's.
//
// The policies run on a goroutine of the interceptor's, from the moment
// the stream is opened until it commits or the policies give up; the
// interceptor returns once the first attempt is open, or with the
// policies' error if none could be. Resources the policies take for the
// attempt that commits, a bulkhead slot, the context of a per-attempt
// timeout, stay taken until the stream ends: when RecvMsg returns io.EOF
// or an error (or the response of a stream whose server does not stream),
// when the context is done, or when the connection closes. When RecvMsg
// returns the end, the policies have seen it. As with plain gRPC, a stream
// that is neither read to the end nor canceled never ends.
//
// A breaker judges a stream when it commits, and again when it ends. A
// stream let through as a half-open breaker's probe gives its verdict when
// it commits, so that a long-lived stream does not keep the breaker
// half-open; one let through while the breaker is closed is counted from
// its final status, so that a stream that fails halfway counts as a
// failure (see package breaker). A grpc-retry-pushback-ms trailer at the
// end of a committed stream is reported to the policies as the
// dependency's pause (resilience.ReportPushback) when the stream ends.
//
// A per-attempt timeout is the time an attempt may take to commit (to
// receive its response header); once the stream commits, it no longer
// applies. A client-streaming call (the client sends a stream, the server
// answers once) commits only when the server answers, which a gRPC server
// does once it has read the whole stream: for such a call run in attempts
// (under a retry policy), the per-attempt timeout starts when the client
// has finished sending (CloseSend), so that it bounds the server's time to
// answer and not the client's own sending; an upload longer than it
// succeeds, as with plain gRPC under the same deadline. Without a retry
// policy around it, a timeout bounds the upload too. A total timeout (one
// outside the retry policy) bounds the whole stream, as a gRPC deadline
// does and as it bounds an HTTP response body: a long-lived stream (a
// watch, a subscription) needs a client whose pipeline has no total
// timeout, or one long enough, with the caller's own deadline to bound it.
// The deadline gRPC sends to the server with a stream (grpc-timeout) is
// the caller's, not the policies'.
//
// The stream interceptors of several Clients may be chained, and chained
// with other interceptors: the grpc.OnFinish options of a stream run once,
// when the stream ends, and not at the end of each attempt, as with gRPC's
// own retry. An interceptor inside this one that sends a stream more than
// once must do the same.
//
// A policy that panics while a stream's attempts run panics on the
// interceptor's goroutine, which ends the program.
//
// # Hedging
//
// Under a hedging policy (package hedge, or standard.WithHedging), an
// idempotent unary call may run several attempts at once: each decodes
// into a reply of its own, and only the winner's is copied into the
// caller's reply (proto.Reset, then proto.Merge; a reply that is not a
// proto.Message but a pointer is copied by value). Streams are never
// hedged: the adapter describes them as sequential
// (resilience.Call.Sequential), so a hedging policy starts a stream's next
// attempt only once the previous one failed before committing.
//
// # Servers
//
// [UnaryServerInterceptor] and [StreamServerInterceptor] run handlers under
// policies, for admission control: a rate limit per client (ratelimit.NewKeyed,
// keyed by the client's address or a key of your choosing) rejects with
// ResourceExhausted and a pushback trailer telling the client when to come
// back.
//
// # Telemetry
//
// The adapter starts no span and records no instrument of its own: the
// policies report what they decided (see their packages), and the adapter
// describes each call to them. Their metrics carry rpc.method (the full
// method without its leading slash) and, on a client, server.address (the
// host of the call's Target). Every status error an attempt returns reaches
// the policies with its code's name as error.type ("UNAVAILABLE",
// "DEADLINE_EXCEEDED"); errors of the policies themselves, such as an open
// breaker seen by a retry, keep theirs ("throttled"). To name the policies
// of [Standard] or choose their providers, pass standard.WithName,
// standard.WithMeterProvider and standard.WithTracerProvider through
// [WithPipeline].
//
// On a server the call's Target is the client's address, which no metric
// records: the semantic conventions keep client.address to spans, and
// every client would make a series of its own. A method that reached an
// unknown-service handler (grpc.UnknownServiceHandler) was chosen by the
// client and is recorded as "_OTHER". A breaker or bulkhead keyed by
// target on a server is keyed by client address, and its gauges would
// report each client as server.address: give it a key function (WithKey)
// there.
//
// To see each attempt as its own client span, install a tracing stats
// handler, such as otelgrpc's, wrapped in [MarkAttempts], which records the
// attempt number (resilience.attempt) on each span; the policies' events
// go on the caller's span, the attempts' parent. The module's
// docs/telemetry.md lists every instrument.
package resiliencegrpc
