package budget_test

import (
	"maps"
	"runtime"
	"testing"

	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func TestTelemetryLevelGauge(t *testing.T) {
	h := telemetrytest.New(t)
	b := budget.New(budget.WithName("api"), budget.WithCapacity(20), budget.WithMeterProvider(h.MeterProvider))
	defer runtime.KeepAlive(b) // its gauge goes with it
	b.TryWithdraw()
	b.TryWithdraw()
	b.Deposit()
	got := telemetrytest.Points(t, h.Collect(t), "resilience.budget.tokens", "{token}")
	if want := map[string]int64{"resilience.name=api": 11}; !maps.Equal(got, want) {
		t.Fatalf("resilience.budget.tokens: got %v, want %v", got, want)
	}
	b.Refund()
	got = telemetrytest.Points(t, h.Collect(t), "resilience.budget.tokens", "{token}")
	if want := map[string]int64{"resilience.name=api": 16}; !maps.Equal(got, want) {
		t.Fatalf("after a refund: got %v, want %v", got, want)
	}
}

// TestTelemetryCapacityGauge checks resilience.budget.capacity, beside the
// level, so that a dashboard shows the share of the budget left without a
// constant.
func TestTelemetryCapacityGauge(t *testing.T) {
	h := telemetrytest.New(t)
	b := budget.New(budget.WithName("api"), budget.WithCapacity(20), budget.WithMeterProvider(h.MeterProvider))
	defer runtime.KeepAlive(b) // its gauge goes with it
	b.TryWithdraw()
	got := telemetrytest.Points(t, h.Collect(t), "resilience.budget.capacity", "{token}")
	if want := map[string]int64{"resilience.name=api": 20}; !maps.Equal(got, want) {
		t.Fatalf("resilience.budget.capacity: got %v, want %v", got, want)
	}
}
