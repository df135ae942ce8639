// Package telemetrytest collects the module's telemetry in tests with the
// OpenTelemetry SDK: a ManualReader for metrics and a SpanRecorder for
// spans. Only test files import it, so the SDK never reaches a user's
// build.
package telemetrytest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Harness holds a meter provider and a tracer provider that record
// everything.
type Harness struct {
	Reader         *sdkmetric.ManualReader
	MeterProvider  *sdkmetric.MeterProvider
	Spans          *tracetest.SpanRecorder
	TracerProvider *sdktrace.TracerProvider
}

// New returns a harness; its providers shut down when the test ends.
func New(t testing.TB) *Harness {
	h := &Harness{Reader: sdkmetric.NewManualReader(), Spans: tracetest.NewSpanRecorder()}
	h.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.Reader))
	h.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.Spans))
	t.Cleanup(func() {
		h.MeterProvider.Shutdown(context.Background())
		h.TracerProvider.Shutdown(context.Background())
	})
	return h
}

// Collect returns the metrics of the module's scope, by name.
func (h *Harness) Collect(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	// Observable gauges go with the policy that owns them once it is
	// unreachable. Collecting garbage first makes a test that lets its
	// policy go before collecting fail every time, not once in a while:
	// such a test must keep the policy reachable (runtime.KeepAlive).
	runtime.GC()
	var rm metricdata.ResourceMetrics
	if err := h.Reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	ms := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, telemetry.ScopeName)
			continue
		}
		if sm.Scope.Version != telemetry.Version {
			t.Errorf("scope version %q, want %q", sm.Scope.Version, telemetry.Version)
		}
		for _, m := range sm.Metrics {
			ms[m.Name] = m
		}
	}
	return ms
}

// Points returns the values of an int64 sum or gauge by attribute set (see
// [Attrs]), and checks its unit. A missing metric has no points.
func Points(t testing.TB, ms map[string]metricdata.Metrics, name, unit string) map[string]int64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return nil
	}
	if m.Unit != unit {
		t.Errorf("%s: unit %q, want %q", name, m.Unit, unit)
	}
	got := make(map[string]int64)
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			got[Attrs(p.Attributes)] += p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			got[Attrs(p.Attributes)] += p.Value
		}
	default:
		t.Fatalf("%s: data %T, want an int64 sum or gauge", name, m.Data)
	}
	return got
}

// Counts returns the number of measurements of a float64 histogram by
// attribute set, and checks its unit.
func Counts(t testing.TB, ms map[string]metricdata.Metrics, name, unit string) map[string]uint64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return nil
	}
	if m.Unit != unit {
		t.Errorf("%s: unit %q, want %q", name, m.Unit, unit)
	}
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s: data %T, want a float64 histogram", name, m.Data)
	}
	got := make(map[string]uint64)
	for _, p := range d.DataPoints {
		got[Attrs(p.Attributes)] += p.Count
	}
	return got
}

// Attrs renders an attribute set as "k=v k=v", keys sorted.
func Attrs(s attribute.Set) string {
	return KVs(s.ToSlice()...)
}

// KVs renders attributes as [Attrs] does.
func KVs(kvs ...attribute.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = fmt.Sprintf("%s=%s", kv.Key, kv.Value.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// Span starts a recording span for the operation under test.
func (h *Harness) Span(ctx context.Context) (context.Context, trace.Span) {
	return h.TracerProvider.Tracer("test").Start(ctx, "caller")
}

// Event is a span event as the tests compare it.
type Event struct {
	Name  string
	Attrs string
}

// Events returns the events of the ended span named name.
func (h *Harness) Events(t testing.TB, name string) []Event {
	t.Helper()
	var evs []Event
	found := false
	for _, s := range h.Spans.Ended() {
		if s.Name() != name {
			continue
		}
		found = true
		for _, e := range s.Events() {
			evs = append(evs, Event{e.Name, KVs(e.Attributes...)})
		}
	}
	if !found {
		t.Fatalf("no ended span %q", name)
	}
	return evs
}

// Histogram returns m's data as a float64 histogram.
func Histogram(t testing.TB, m metricdata.Metrics) metricdata.Histogram[float64] {
	t.Helper()
	d, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s: data %T, want a float64 histogram", m.Name, m.Data)
	}
	return d
}

// Want returns m with each key's "k=v" fields sorted as [Attrs] sorts them,
// so that tests can write keys in any order.
func Want[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[sortFields(k)] = v
	}
	return out
}

// WantEvents returns evs with their attribute fields sorted, as [Want].
func WantEvents(evs ...Event) []Event {
	out := make([]Event, len(evs))
	for i, e := range evs {
		out[i] = Event{e.Name, sortFields(e.Attrs)}
	}
	return out
}

func sortFields(s string) string {
	fs := strings.Fields(s)
	slices.Sort(fs)
	return strings.Join(fs, " ")
}

// Ev returns the event named name with attributes attrs ("k=v k=v").
func Ev(name, attrs string) Event { return Event{Name: name, Attrs: attrs} }
