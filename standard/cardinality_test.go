package standard_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// series returns the number of series of each instrument and whether the
// SDK overflowed it (its 2000-series default cardinality limit).
func series(ms map[string]metricdata.Metrics) (n map[string]int, overflow map[string]bool) {
	n, overflow = map[string]int{}, map[string]bool{}
	count := func(name string, sets []attribute.Set) {
		n[name] = len(sets)
		for _, s := range sets {
			if v, ok := s.Value("otel.metric.overflow"); ok && v.AsBool() {
				overflow[name] = true
			}
		}
	}
	for name, m := range ms {
		var sets []attribute.Set
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				sets = append(sets, p.Attributes)
			}
		}
		count(name, sets)
	}
	return n, overflow
}

// TestSeriesBoundedWithoutServerAddress: 5000 hosts through Standard stay
// under the SDK's default of 2000 series per instrument once
// WithoutServerAddress is given; without it they overflow.
func TestSeriesBoundedWithoutServerAddress(t *testing.T) {
	run := func(t *testing.T, hosts int, opts ...standard.Option) (map[string]int, map[string]bool) {
		h := telemetrytest.New(t)
		opts = append([]standard.Option{standard.WithMeterProvider(h.MeterProvider),
			standard.WithRetry(retry.WithBackoff(time.Microsecond, time.Microsecond)),
			standard.WithBulkhead(4)}, opts...)
		p, err := standard.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range hosts {
			ctx := resilience.WithCall(context.Background(), resilience.Call{
				Target: fmt.Sprintf("h%d.example:%d", i, 8000+i%3), Method: "GET", Idempotent: true})
			n := 0
			if err := p.Do(ctx, func(context.Context) error {
				if n++; n == 1 {
					return errors.New("transient") // a retry event per host
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		ms := h.Collect(t)
		// The gauges are observed for as long as the pipeline is
		// reachable (they go with it): keep it until they were collected.
		runtime.KeepAlive(p)
		return series(ms)
	}
	// The breaker's state gauge has its own bound (one series per host and
	// state, or fewer); the instruments below are the per-call ones.
	perCall := []string{telemetry.AttemptDurationName, telemetry.EventsName, telemetry.BulkheadInFlightName}

	n, overflow := run(t, 5000, standard.WithoutServerAddress())
	for _, name := range perCall {
		if n[name] == 0 || n[name] > 2000 || overflow[name] {
			t.Errorf("with WithoutServerAddress: %s has %d series (overflow %v), want 1 to 2000", name, n[name], overflow[name])
		}
	}
	// The breaker's state gauge: one series per state at most, once the
	// hosts are left off.
	if b := n[telemetry.BreakerStateName]; b == 0 || b > 3 || overflow[telemetry.BreakerStateName] {
		t.Errorf("with WithoutServerAddress: %s has %d series (overflow %v), want 1 to 3 (a count per state)", telemetry.BreakerStateName, b, overflow[telemetry.BreakerStateName])
	}
	t.Logf("with WithoutServerAddress: %v", n)

	// Without it, a few more hosts than the SDK's limit overflow it.
	n, overflow = run(t, 2100)
	for _, name := range perCall {
		if !overflow[name] {
			t.Errorf("without the option: %s has %d series and no overflow; the test no longer shows the bound", name, n[name])
		}
	}
	t.Logf("without: %v, overflow %v", n, overflow)
}

// With WithoutServerAddress, no part of the pipeline records
// server.address or server.port: 50 hosts through a pipeline with every
// part on (hedging, idempotency keys, rate limit, bulkhead) leave no
// series with either. Before, the hedge's events and attempt durations and
// the idempotency keyer's events carried the host.
func TestWithoutServerAddressEveryPart(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", []standard.Option{standard.WithRetry(retry.WithBackoff(time.Microsecond, time.Microsecond))}},
		{"hedging", []standard.Option{standard.WithHedging(hedge.WithDelay(time.Microsecond))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := telemetrytest.New(t)
			p, err := standard.New(append([]standard.Option{standard.WithMeterProvider(h.MeterProvider),
				standard.WithoutServerAddress(), standard.WithIdempotencyKeys("*"),
				standard.WithBulkhead(4), standard.WithAdaptiveConcurrency(), standard.WithRateLimit(rate.Inf, 0)}, tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				ctx := resilience.WithCall(context.Background(), resilience.Call{
					Target: fmt.Sprintf("h%d.example:%d", i, 8000+i), Method: "POST"})
				var n atomic.Int32
				if err := p.Do(ctx, func(context.Context) error {
					if n.Add(1) == 1 {
						return errors.New("transient") // a retry, or a hedge, per host
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			ms := h.Collect(t)
			runtime.KeepAlive(p)
			seen := map[string]bool{}
			for name, m := range ms {
				for _, a := range seriesAttrs(m) {
					seen[name] = true
					if strings.Contains(a, "server.address") || strings.Contains(a, "server.port") {
						t.Errorf("%s: series %q carries the host", name, a)
						break
					}
				}
			}
			for _, name := range []string{telemetry.EventsName, telemetry.AttemptDurationName, "resilience.adaptive.limit"} {
				if !seen[name] {
					t.Errorf("no series of %s: the test no longer looks at it", name)
				}
			}
		})
	}
}

// seriesAttrs returns the attributes of each series of m.
func seriesAttrs(m metricdata.Metrics) []string {
	var out []string
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, telemetrytest.Attrs(p.Attributes))
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, telemetrytest.Attrs(p.Attributes))
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, telemetrytest.Attrs(p.Attributes))
		}
	}
	return out
}
