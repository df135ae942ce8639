package timeout

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// An Option configures a [Policy].
type Option interface{ apply(*config) }

type config struct {
	scope Scope
	tel   telemetry.Config
}

// A Scope says what a [Policy] bounds when the operation's result outlives
// it (a response body read after the operation returned, a stream): see
// [WithScope].
type Scope uint8

const (
	// ScopeAuto, the default, infers the scope from where the policy
	// runs: ScopeAttempt inside an attempt started by a policy that may
	// make several (resilience.InAttempt), ScopeCall elsewhere.
	ScopeAuto Scope = iota
	// ScopeCall bounds the whole call, the held result included: when
	// the deadline passes, a body still being read is cut off, as
	// http.Client.Timeout does.
	ScopeCall
	// ScopeAttempt bounds the time until the operation returns, and never
	// a held result: once the operation returned in time, the timer is
	// stopped and the result is bounded only by the deadlines outside the
	// policy. It is the scope of a per-attempt timeout.
	ScopeAttempt
)

type scopeOption Scope

func (o scopeOption) apply(c *config) { c.scope = Scope(o) }

// WithScope sets what the policy bounds, so that its role does not depend
// on whether another policy (a retry) happened to start an attempt around
// it. The default is [ScopeAuto]. New panics if s is not one of the
// package's scopes.
func WithScope(s Scope) Option { return scopeOption(s) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the policy in its telemetry (the resilience.name
// attribute). Names should be few and fixed, such as "total" and "attempt".
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the policy's metrics. The default
// is the global provider (otel.GetMeterProvider) as it is when the policy
// is built; the no-op provider of go.opentelemetry.io/otel/metric/noop
// turns metrics off.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the policy's metrics, so that their series stay bounded
// however many hosts it sees (the OpenTelemetry SDK keeps 2000 series per
// instrument by default). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the policy. The policy
// starts no span: it adds an event to the recording span in the call's
// context when its deadline expires. The default is the global provider;
// the no-op provider of go.opentelemetry.io/otel/trace/noop turns the
// events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }
