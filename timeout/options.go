package timeout

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// An Option configures a [Policy].
type Option interface{ apply(*config) }

type config struct {
	tel telemetry.Config
}

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

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the policy. The policy
// starts no span: it adds an event to the recording span in the call's
// context when its deadline expires. The default is the global provider;
// the no-op provider of go.opentelemetry.io/otel/trace/noop turns the
// events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }
