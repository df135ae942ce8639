// Package telemetry is the OpenTelemetry machinery shared by the policies
// and adapters: the scope, the instrument and attribute names of the
// module's telemetry table (docs/telemetry.md), and a [Policy] value per
// policy instance that creates its instruments once, at build time.
//
// Only the OTel API is used. Without options a policy takes the global
// providers, resolved at build time: before an SDK is installed those are
// the global delegating providers, which forward to the SDK once
// otel.SetMeterProvider or otel.SetTracerProvider is called, so a policy
// built early still reports. The no-op providers of
// go.opentelemetry.io/otel/metric/noop and .../trace/noop are recognised and
// switch the corresponding half off entirely: nothing is timed, counted or
// annotated.
//
// The hot path does not allocate: attribute sets known at build time are
// precomputed, measurements that need per-call attributes are built only
// when the instrument is Enabled, and span-event attributes only when the
// span in the context is recording.
package telemetry

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"time"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/resilience-go/resilience"
)

// ScopeName is the instrumentation scope of every meter and tracer of the
// module.
const ScopeName = "github.com/resilience-go/resilience"

// Version is the module's version, the instrumentation scope version of
// every meter and tracer (otel_scope_version in Prometheus). The release
// process sets it to the version being tagged (RELEASING.md);
// TestScopeVersionMatchesChangelog keeps it equal to the newest version in
// CHANGELOG.md.
const Version = "0.1.0"

// Instrument names; see docs/telemetry.md for kinds, units and attributes.
const (
	EventsName           = "resilience.events"
	AttemptDurationName  = "resilience.attempt.duration"
	BreakerStateName     = "resilience.breaker.state"
	BulkheadInFlightName = "resilience.bulkhead.in_flight"
	BulkheadWaitName     = "resilience.bulkhead.wait.duration"
	RateLimitWaitName    = "resilience.ratelimit.wait.duration"
	BudgetTokensName     = "resilience.budget.tokens"
	BudgetCapacityName   = "resilience.budget.capacity"
	BulkheadLimitName    = "resilience.bulkhead.limit"
)

// Attribute keys of the module's own (non-semconv) attributes.
const (
	PolicyKey       = attribute.Key("resilience.policy")
	NameKey         = attribute.Key("resilience.name")
	EventKey        = attribute.Key("resilience.event")
	AttemptKey      = attribute.Key("resilience.attempt")
	OutcomeKey      = attribute.Key("resilience.outcome")
	BreakerStateKey = attribute.Key("resilience.breaker.state")
	WaitKey         = attribute.Key("resilience.wait")         // seconds, span events
	RetryInKey      = attribute.Key("resilience.retry_in")     // seconds, span events
	PushbackKey     = attribute.Key("resilience.pushback")     // bool, span events
	ReasonKey       = attribute.Key("resilience.reason")       // span events
	TimeoutKey      = attribute.Key("resilience.timeout")      // seconds, span events
	LimitKey        = attribute.Key("resilience.limit")        // span events
	FromStateKey    = attribute.Key("resilience.breaker.from") // span events
	QuotaKey        = attribute.Key("resilience.quota")        // ratelimit quota name, span events
	RemainingKey    = attribute.Key("resilience.remaining")    // ratelimit remaining quota, span events
	ModeKey         = attribute.Key("resilience.mode")         // ratelimit failure mode, span events
)

// Policy kinds, the values of resilience.policy.
const (
	KindTimeout         = "timeout"
	KindRetry           = "retry"
	KindBreaker         = "breaker"
	KindBulkhead        = "bulkhead"
	KindRateLimit       = "ratelimit"        // a client's own rate limit (ratelimit.New, NewKeyed)
	KindRateLimitServer = "ratelimit_server" // a server's limits on its clients (ratelimit.Middleware, Enforce, redisrate)
	KindIdempotency     = "idempotency"
	KindHedge           = "hedge"
	KindBudget          = "budget"
)

// Events, the values of resilience.event. The span event for event e of a
// policy of kind k is named "resilience.<k>.<e>".
const (
	EventRetryScheduled = "scheduled"   // retry: a failed attempt will be retried after a wait
	EventRetryExhausted = "exhausted"   // retry: gave up on a retryable failure
	EventOpened         = "opened"      // breaker: closed or half-open → open
	EventHalfOpened     = "half_opened" // breaker: open → half-open
	EventClosed         = "closed"      // breaker: half-open → closed
	EventRejected       = "rejected"    // breaker, bulkhead, ratelimit: call turned away
	EventExpired        = "expired"     // timeout: the policy's deadline cut the operation short
	EventAllowed        = "allowed"     // ratelimit (server side): a request admitted
	EventDegraded       = "degraded"    // ratelimit (shared): store unreachable, deciding locally
	EventRecovered      = "recovered"   // ratelimit (shared): store reachable again
	EventStoreError     = "store_error" // ratelimit (shared): a store call failed

	EventBudgetExhausted = "budget_exhausted" // retry, hedge: a retry or hedge was not sent, the retry budget being empty
	EventHedgeSent       = "sent"             // hedge: an extra attempt was started
	EventHedgeWon        = "won"              // hedge: an extra attempt's result was returned
	EventHedgeCancelled  = "cancelled"        // hedge: an attempt was cancelled because another one won

	// Package idempotency reports these, with KindIdempotency.
	EventStamped  = "stamped"  // client: a key was given to an unsafe call
	EventReplayed = "replayed" // server: a recorded response was returned for a repeated key
	EventConflict = "conflict" // server: a repeat arrived while the key's first request was in flight
	EventMismatch = "mismatch" // server: a key was reused for a different request
	EventReleased = "released" // server: a key was freed, not recorded (resilience.reason: why)
)

// Config selects a policy instance's name and providers. The zero Config
// names nothing and uses the global providers.
type Config struct {
	Name           string
	MeterProvider  metric.MeterProvider // nil: otel.GetMeterProvider()
	TracerProvider trace.TracerProvider // nil: otel.GetTracerProvider()
	// NoServerAddress leaves server.address and server.port off the
	// instance's metrics, so that their series do not grow with the
	// number of hosts (see docs/telemetry.md).
	NoServerAddress bool
}

// Policy is the telemetry of one policy instance. A nil *Policy is valid and
// does nothing, so that values built without telemetry (a keyed policy's
// per-key values) share the code paths.
type Policy struct {
	kind     string
	name     string
	metrics  bool // false: no instrument is used
	spans    bool // false: no span event is added
	noServer bool // leave server.address and server.port off metrics

	meter  metric.Meter
	tracer trace.Tracer

	events   metric.Int64Counter
	attempts metric.Float64Histogram

	nameAttrs []attribute.KeyValue // resilience.name, if named
	baseAttrs []attribute.KeyValue // resilience.policy, resilience.name
}

// New returns the telemetry of a policy of the given kind (KindRetry, ...).
func New(kind string, c Config) *Policy {
	mp, tp := c.MeterProvider, c.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	p := &Policy{kind: kind, name: c.Name, noServer: c.NoServerAddress}
	if c.Name != "" {
		p.nameAttrs = []attribute.KeyValue{NameKey.String(c.Name)}
	}
	p.baseAttrs = append([]attribute.KeyValue{PolicyKey.String(kind)}, p.nameAttrs...)
	if _, off := tp.(tracenoop.TracerProvider); !off {
		p.spans = true
		p.tracer = tp.Tracer(ScopeName, trace.WithInstrumentationVersion(Version))
	}
	if _, off := mp.(metricnoop.MeterProvider); !off {
		p.metrics = true
		p.meter = mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version))
		// Instrument creation only fails on invalid names or units,
		// which are constants here: the instrument returned with the
		// error is a working no-op, so the error is dropped.
		p.events, _ = p.meter.Int64Counter(EventsName,
			metric.WithUnit("{event}"),
			metric.WithDescription("Decisions taken by resilience policies: retries scheduled and exhausted, breaker state changes, calls rejected, timeouts."))
	}
	return p
}

// Kind returns the policy kind given to [New].
func (p *Policy) Kind() string { return p.kind }

// Name returns the instance's name.
func (p *Policy) Name() string { return p.name }

// Metrics reports whether the instance records metrics at all.
func (p *Policy) Metrics() bool { return p != nil && p.metrics }

// Meter returns the instance's meter, nil when metrics are off.
func (p *Policy) Meter() metric.Meter {
	if p == nil {
		return nil
	}
	return p.meter
}

// Tracer returns the instance's tracer, for adapters that start spans of
// their own (a gRPC attempt span); nil when tracing is off.
func (p *Policy) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// NameAttrs returns the attributes naming the instance (resilience.name,
// absent when the instance has no name). The caller must not modify them.
func (p *Policy) NameAttrs() []attribute.KeyValue { return p.nameAttrs }

// Count adds one to resilience.events for event ev, with the call's
// attributes ([CallAttrs]) from ctx. It does nothing, without allocating,
// when no SDK reads the counter.
func (p *Policy) Count(ctx context.Context, ev string) {
	if p == nil || !p.metrics || !p.events.Enabled(ctx) {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(p.baseAttrs)+4)
	attrs = append(attrs, p.baseAttrs...)
	attrs = append(attrs, EventKey.String(ev))
	attrs = callAttrs(ctx, attrs, !p.noServer)
	p.events.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attrs...)))
}

// Span returns the span in ctx if span events are on and it is recording,
// nil otherwise. Build span-event attributes only when it is not nil.
func (p *Policy) Span(ctx context.Context) trace.Span {
	if p == nil || !p.spans {
		return nil
	}
	if s := trace.SpanFromContext(ctx); s.IsRecording() {
		return s
	}
	return nil
}

// AddEvent adds the span event for ev ("resilience.<kind>.<ev>") to span,
// with the instance's name and attrs.
func (p *Policy) AddEvent(span trace.Span, ev string, attrs ...attribute.KeyValue) {
	all := make([]attribute.KeyValue, 0, len(p.nameAttrs)+len(attrs))
	all = append(all, p.nameAttrs...)
	all = append(all, attrs...)
	span.AddEvent("resilience."+p.kind+"."+ev, trace.WithAttributes(all...))
}

// Event counts ev and adds its span event, with no attributes beyond the
// instance's and the call's. Policies with facts to report call Count,
// Span and AddEvent themselves.
func (p *Policy) Event(ctx context.Context, ev string) {
	p.Count(ctx, ev)
	if s := p.Span(ctx); s != nil {
		p.AddEvent(s, ev)
	}
}

// CountWith is [Policy.Count] with extra attributes, each from a small
// fixed set of values (the idempotency events' resilience.reason).
func (p *Policy) CountWith(ctx context.Context, ev string, extra ...attribute.KeyValue) {
	if p == nil || !p.metrics || !p.events.Enabled(ctx) {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(p.baseAttrs)+4+len(extra))
	attrs = append(attrs, p.baseAttrs...)
	attrs = append(attrs, EventKey.String(ev))
	attrs = append(attrs, extra...)
	attrs = callAttrs(ctx, attrs, !p.noServer)
	p.events.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attrs...)))
}

// AttemptRecorder records resilience.attempt.duration.
type AttemptRecorder struct {
	p *Policy
	h metric.Float64Histogram
}

// Attempts returns the recorder of attempt durations for p, creating the
// histogram on first use: call it when the policy is built, not
// concurrently. Its zero value, returned when metrics are off, records
// nothing.
func (p *Policy) Attempts() AttemptRecorder {
	if !p.Metrics() {
		return AttemptRecorder{}
	}
	if p.attempts == nil {
		p.attempts, _ = p.meter.Float64Histogram(AttemptDurationName,
			metric.WithUnit("s"),
			metric.WithDescription("Time the dependency had each attempt a retrying policy sent, until the operation returned (a response's headers, not its body); waits at a gate or bulkhead inside are left out."),
			metric.WithExplicitBucketBoundaries(DurationBuckets...))
	}
	return AttemptRecorder{p: p, h: p.attempts}
}

// Active reports whether a recording would be kept: time the attempt only
// then.
func (r AttemptRecorder) Active(ctx context.Context) bool {
	return r.h != nil && r.h.Enabled(ctx)
}

// Record records attempt n (1-based) of the call in ctx that took d and
// returned err.
func (r AttemptRecorder) Record(ctx context.Context, n int, d time.Duration, err error) {
	if !r.Active(ctx) {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(r.p.nameAttrs)+7)
	attrs = append(attrs, r.p.nameAttrs...)
	attrs = append(attrs, AttemptKey.Int(n), OutcomeKey.String(Outcome(ctx, err).String()))
	if err != nil {
		attrs = append(attrs, semconv.ErrorTypeKey.String(ErrorType(err)))
	}
	attrs = callAttrs(ctx, attrs, !r.p.noServer)
	r.h.Record(ctx, d.Seconds(), metric.WithAttributeSet(attribute.NewSet(attrs...)))
}

// WaitRecorder records how long calls waited to be let through, in a
// histogram of seconds named by the policy (resilience.bulkhead.wait.duration,
// resilience.ratelimit.wait.duration).
type WaitRecorder struct {
	p *Policy
	h metric.Float64Histogram
}

// Waits returns a recorder of waits in histogram name. Call it when the
// policy is built. Its zero value, returned when metrics are off, records
// nothing.
func (p *Policy) Waits(name, description string) WaitRecorder {
	if !p.Metrics() {
		return WaitRecorder{}
	}
	h, _ := p.meter.Float64Histogram(name,
		metric.WithUnit("s"),
		metric.WithDescription(description),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	return WaitRecorder{p: p, h: h}
}

// Record records a wait of d by the call in ctx, with the instance's name
// and the call's attributes, and takes it out of the duration of the
// attempt the call is (see [AttemptClock]), whether or not the histogram is
// recorded.
func (r WaitRecorder) Record(ctx context.Context, d time.Duration) {
	held(ctx, d)
	if r.h == nil || !r.h.Enabled(ctx) {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(r.p.nameAttrs)+3)
	attrs = append(attrs, r.p.nameAttrs...)
	attrs = callAttrs(ctx, attrs, !r.p.noServer)
	r.h.Record(ctx, d.Seconds(), metric.WithAttributeSet(attribute.NewSet(attrs...)))
}

// DurationBuckets are the histogram boundaries, in seconds, of every
// duration the module records: from 1ms to 30s (the standard pipeline's
// total timeout).
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Outcome is the kind of err as policies see it; the caller's cancellation
// wins over the operation's own error.
func Outcome(ctx context.Context, err error) resilience.Kind {
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return resilience.KindCanceled
	}
	return resilience.Classify(err)
}

// ErrorTyper is implemented by errors that know their error.type value,
// such as resiliencehttp.StatusError (the HTTP status code).
type ErrorTyper interface {
	ErrorType() string
}

// ErrorType returns the error.type attribute value of a non-nil err: the
// value of the first [ErrorTyper] in its chain (an HTTP status code),
// "timeout" for an error matching context.DeadlineExceeded, otherwise the
// name of its resilience.Kind ("transient", "throttled", ...). Every value
// comes from a small fixed set.
func ErrorType(err error) string {
	var et ErrorTyper
	if errors.As(err, &et) {
		return et.ErrorType()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return resilience.Classify(err).String()
}

// CallAttrs appends to attrs the semantic-convention attributes of the call
// described in ctx (resilience.CallFrom): server.address and server.port
// from its target, and http.request.method for an HTTP method or rpc.method for a gRPC full
// method ("/pkg.Service/Method", recorded without the leading slash).
// Unknown HTTP methods are recorded as "_OTHER", so every value is bounded.
// Outside any call it appends nothing. For a call a server received
// ([Incoming]) it leaves out the target.
func CallAttrs(ctx context.Context, attrs []attribute.KeyValue) []attribute.KeyValue {
	return callAttrs(ctx, attrs, true)
}

// callAttrs is CallAttrs, with the server's attributes only if server.
func callAttrs(ctx context.Context, attrs []attribute.KeyValue, server bool) []attribute.KeyValue {
	c, ok := resilience.CallFrom(ctx)
	if !ok {
		return attrs
	}
	in, _ := ctx.Value(incomingKey{}).(incomingCall)
	if server && c.Target != "" && !in.incoming {
		attrs = appendServer(attrs, c.Target)
	}
	switch {
	case strings.HasPrefix(c.Method, "/") && in.otherMethod:
		attrs = append(attrs, semconv.RPCMethod("_OTHER"))
	case strings.HasPrefix(c.Method, "/"):
		attrs = append(attrs, semconv.RPCMethod(c.Method[1:]))
	case c.Method != "":
		attrs = append(attrs, semconv.HTTPRequestMethodKey.String(httpMethod(c.Method)))
	}
	return attrs
}

type incomingKey struct{}

type incomingCall struct{ incoming, otherMethod bool }

// Incoming returns ctx marked, for [CallAttrs], as the context of a call a
// server received (a gRPC server interceptor's). The call's target there
// names the client, not a server, so CallAttrs leaves it out: the semantic
// conventions put a client's address (client.address) on server spans, never
// on metrics, where every client would make a series of its own. With
// otherMethod, the call's method came from the client without being matched
// against the server's registered methods (a gRPC unknown-service handler),
// so it is unbounded and CallAttrs records rpc.method as "_OTHER", as the
// conventions ask for methods the instrumentation does not know.
func Incoming(ctx context.Context, otherMethod bool) context.Context {
	return context.WithValue(ctx, incomingKey{}, incomingCall{incoming: true, otherMethod: otherMethod})
}

// Outgoing undoes [Incoming] for the work a server's handler does: the
// calls it makes are its own, with their own targets.
func Outgoing(ctx context.Context) context.Context {
	if in, _ := ctx.Value(incomingKey{}).(incomingCall); !in.incoming {
		return ctx
	}
	return context.WithValue(ctx, incomingKey{}, incomingCall{})
}

// ServerAttrs returns the attributes that name target's server
// (server.address and, when the target has one, server.port) for an
// observable instrument of the instance, or nil when the instance leaves
// them off ([Config].NoServerAddress) or target is empty.
func (p *Policy) ServerAttrs(target string) []attribute.KeyValue {
	if p == nil || p.noServer || target == "" {
		return nil
	}
	return appendServer(nil, target)
}

// ServerAddressOff reports whether the instance leaves server.address and
// server.port off its metrics.
func (p *Policy) ServerAddressOff() bool { return p != nil && p.noServer }

// appendServer appends server.address and, if target has one, server.port.
func appendServer(attrs []attribute.KeyValue, target string) []attribute.KeyValue {
	attrs = append(attrs, semconv.ServerAddress(ServerAddress(target)))
	if port, ok := ServerPort(target); ok {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// ServerPort returns the port of a target ("api.example.com:443" → 443);
// ok is false when it has none.
func ServerPort(target string) (port int, ok bool) {
	i := strings.LastIndexByte(target, ':')
	if i < 0 || strings.Contains(target[i:], "]") {
		return 0, false
	}
	p, err := strconv.Atoi(target[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return 0, false
	}
	return p, true
}

// ServerAddress returns the host of a target ("api.example.com:443" →
// "api.example.com"), as server.address wants it.
func ServerAddress(target string) string {
	if i := strings.LastIndexByte(target, ':'); i >= 0 && !strings.Contains(target[i:], "]") {
		if _, err := strconv.Atoi(target[i+1:]); err == nil {
			target = target[:i]
		}
	}
	return strings.TrimSuffix(strings.TrimPrefix(target, "["), "]")
}

func httpMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY":
		return m
	}
	return "_OTHER"
}

// Observe registers f to report observable instruments at each collection
// for as long as owner is reachable: the registration holds owner weakly and
// is removed once owner is garbage collected. f must not capture owner; it
// receives it. Observe does nothing when metrics are off.
func Observe[T any](p *Policy, owner *T, f func(owner *T, o metric.Observer), insts ...metric.Observable) {
	if !p.Metrics() {
		return
	}
	wp := weak.Make(owner)
	reg, err := p.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if v := wp.Value(); v != nil {
			f(v, o)
		}
		return nil
	}, insts...)
	if err != nil {
		otel.Handle(err)
		return
	}
	runtime.AddCleanup(owner, func(r metric.Registration) { r.Unregister() }, reg)
}
