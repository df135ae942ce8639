package telemetry_test

import (
	"context"
	"os"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/retry"
)

// TestScopeVersion checks that the meter and the tracer carry the module's
// version as their instrumentation scope version (otel_scope_version in
// Prometheus), not an empty string.
func TestScopeVersion(t *testing.T) {
	h := telemetrytest.New(t)
	p := retry.New(retry.WithMeterProvider(h.MeterProvider), retry.WithTracerProvider(h.TracerProvider))
	ctx, span := h.Span(resilience.WithCall(context.Background(), resilience.Call{Target: "api.example:443", Method: "GET", Idempotent: true}))
	p.Do(ctx, func(context.Context) error { return nil })
	span.End()
	if telemetry.Version == "" {
		t.Fatal("telemetry.Version is empty")
	}
	var rm metricdata.ResourceMetrics
	if err := h.Reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) == 0 {
		t.Fatal("no metrics collected")
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name == telemetry.ScopeName && sm.Scope.Version != telemetry.Version {
			t.Errorf("meter scope version %q, want %q", sm.Scope.Version, telemetry.Version)
		}
	}
	tp := telemetry.New(telemetry.KindRetry, telemetry.Config{TracerProvider: h.TracerProvider})
	_, s := tp.Tracer().Start(context.Background(), "x")
	s.End()
	for _, sp := range h.Spans.Ended() {
		if sp.Name() == "x" && sp.InstrumentationScope().Version != telemetry.Version {
			t.Errorf("tracer scope version %q, want %q", sp.InstrumentationScope().Version, telemetry.Version)
		}
	}
}

// TestScopeVersionMatchesChangelog checks that the release process bumped
// the version: telemetry.Version is the newest version in CHANGELOG.md.
func TestScopeVersionMatchesChangelog(t *testing.T) {
	b, err := os.ReadFile("../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+[^\]]*)\]`).FindSubmatch(b)
	if m == nil {
		t.Fatal("CHANGELOG.md has no released version section")
	}
	if got, want := telemetry.Version, string(m[1]); got != want {
		t.Errorf("telemetry.Version = %q, want %q, the newest version in CHANGELOG.md (see RELEASING.md)", got, want)
	}
}
