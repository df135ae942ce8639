package hedge_test

import (
	"context"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/retry"
)

// BenchmarkSuccess compares the success path, where no hedge fires, with a
// retry policy's and with no policy.
func BenchmarkSuccess(b *testing.B) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api:443", Method: "GET", Idempotent: true})
	op := func(context.Context) error { return nil }
	off := func() (metricnoop.MeterProvider, tracenoop.TracerProvider) {
		return metricnoop.NewMeterProvider(), tracenoop.NewTracerProvider()
	}
	mp, tp := off()
	for _, bm := range []struct {
		name string
		p    resilience.Policy
	}{
		{"none", resilience.Chain()},
		{"retry", retry.New(retry.WithMeterProvider(mp), retry.WithTracerProvider(tp))},
		{"retry+budget", retry.New(retry.WithBudget(budget.New()), retry.WithMeterProvider(mp), retry.WithTracerProvider(tp))},
		{"hedge+budget", hedge.New(hedge.WithBudget(budget.New()), hedge.WithMeterProvider(mp), hedge.WithTracerProvider(tp))},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bm.p.Do(ctx, op)
			}
		})
	}
}
