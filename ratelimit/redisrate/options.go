package redisrate

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Mode is what a [Limiter] does while Redis cannot be reached.
type Mode int

const (
	// Degrade, the default, decides locally, holding each replica to its
	// share of the quota: Limit divided by the number of replicas (set
	// with [WithReplicas], or else the number last learned from Redis),
	// so that the replicas together admit about the quota, as they do
	// with Redis up. The share is per window, not per outage: short
	// outages one after the other draw on the same share. Since Redis
	// and the shares do not know what the other admitted, a key may get
	// up to about twice its quota over a window that spans an outage.
	Degrade Mode = iota
	// FailOpen admits every request, without RateLimit headers.
	FailOpen
	// FailClosed turns every request away with an error matching
	// ratelimit.ErrUnavailable: 503 from ratelimit.Middleware.
	FailClosed
)

func (m Mode) String() string {
	switch m {
	case Degrade:
		return "degrade"
	case FailOpen:
		return "fail_open"
	case FailClosed:
		return "fail_closed"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults of a [Limiter].
const (
	DefaultPrefix        = "ratelimit:"
	DefaultProbeInterval = time.Second
	DefaultHeartbeat     = time.Second
	DefaultMaxKeys       = 10_000
	DefaultLeaseMaxAge   = time.Second
)

// An Option configures a [Limiter].
type Option interface{ apply(*config) }

type config struct {
	prefix    string
	mode      Mode
	replicas  int
	probe     time.Duration
	heartbeat time.Duration
	lease     int64
	leaseAge  time.Duration
	maxKeys   int
	tel       telemetry.Config
}

func defaultConfig() config {
	return config{
		prefix: DefaultPrefix, probe: DefaultProbeInterval, heartbeat: DefaultHeartbeat,
		leaseAge: DefaultLeaseMaxAge, maxKeys: DefaultMaxKeys,
	}
}

func (c *config) validate() error {
	switch {
	case strings.ContainsAny(c.prefix, "{}"):
		return fmt.Errorf("WithPrefix: the prefix must not contain braces (they mark Redis Cluster hash tags), got %q", c.prefix)
	case c.mode < Degrade || c.mode > FailClosed:
		return fmt.Errorf("WithMode: unknown mode %d", int(c.mode))
	case c.replicas < 0:
		return fmt.Errorf("WithReplicas: n must not be negative, got %d", c.replicas)
	case c.probe <= 0:
		return fmt.Errorf("WithProbeInterval: d must be positive, got %v", c.probe)
	case c.heartbeat <= 0:
		return fmt.Errorf("WithHeartbeat: d must be positive, got %v", c.heartbeat)
	case c.lease < 0:
		return fmt.Errorf("WithLease: n must not be negative, got %d", c.lease)
	case c.leaseAge <= 0:
		return fmt.Errorf("WithLease: maxAge must be positive, got %v", c.leaseAge)
	case c.maxKeys < 1:
		return fmt.Errorf("WithMaxKeys: n must be at least 1, got %d", c.maxKeys)
	}
	return nil
}

type prefixOption string

func (o prefixOption) apply(c *config) { c.prefix = string(o) }

// WithPrefix sets the prefix of the limiter's Redis keys (default
// "ratelimit:"). A key's state is stored at prefix + quota name + ":{" +
// key + "}": the braces are a Redis Cluster hash tag. The prefix must not
// contain braces.
func WithPrefix(p string) Option { return prefixOption(p) }

type modeOption Mode

func (o modeOption) apply(c *config) { c.mode = Mode(o) }

// WithMode sets what the limiter does while Redis cannot be reached
// (default [Degrade]).
func WithMode(m Mode) Option { return modeOption(m) }

type replicasOption int

func (o replicasOption) apply(c *config) { c.replicas = int(o) }

// WithReplicas sets the number of replicas sharing the quota, for the
// [Degrade] mode. Zero, the default, learns it from Redis while Redis is
// up: every replica that admits requests records a heartbeat there (see
// [WithHeartbeat]), and the count last seen is used during an outage (one
// replica, the whole quota, if none was ever seen).
func WithReplicas(n int) Option { return replicasOption(n) }

type probeOption time.Duration

func (o probeOption) apply(c *config) { c.probe = time.Duration(o) }

// WithProbeInterval sets how often, while Redis is down, one request tries
// Redis again (default 1s); the others are decided without it. The first
// request that reaches Redis ends the outage.
func WithProbeInterval(d time.Duration) Option { return probeOption(d) }

type heartbeatOption time.Duration

func (o heartbeatOption) apply(c *config) { c.heartbeat = time.Duration(o) }

// WithHeartbeat sets how often the limiter records that its replica is
// alive (default 1s), when it learns the number of replicas from Redis. The
// heartbeat rides on a request (one extra round trip per interval); a
// replica is counted until three intervals after its last heartbeat.
func WithHeartbeat(d time.Duration) Option { return heartbeatOption(d) }

type leaseOption struct {
	n      int64
	maxAge time.Duration
}

func (o leaseOption) apply(c *config) { c.lease, c.leaseAge = o.n, o.maxAge }

// WithLease turns on the leasing mode: instead of one Redis round trip per
// request, the limiter takes up to n requests' worth of a key's quota at
// once and spends it locally, for at most maxAge (then what is left of it
// is dropped, unspent). Throughput grows about n-fold; the price is
// accuracy: the quota is taken from Redis when leased and spent later, so
// over any window the replicas together may admit up to one lease (n) per
// replica more than the quota, and a lease dropped unspent admits fewer.
// Zero, the default, is the exact mode.
func WithLease(n int64, maxAge time.Duration) Option { return leaseOption{n, maxAge} }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys = int(o) }

// WithMaxKeys bounds the number of keys for which the limiter keeps local
// state (leases, and the local limiter of the [Degrade] mode); default
// 10,000. Idle keys are forgotten first.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the limiter in its telemetry (resilience.name).
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the limiter's metrics (default
// the global one).
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider whose recording spans get the
// limiter's events (default the global one).
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }
