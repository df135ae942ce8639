package standard_test

import (
	"context"
	"maps"
	"testing"
	"testing/synctest"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// TestTelemetryEveryPart checks that the pipeline's providers and name
// reach every part.
func TestTelemetryEveryPart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		p, err := standard.New(standard.WithName("users"), standard.WithMeterProvider(h.MeterProvider), standard.WithTracerProvider(h.TracerProvider),
			standard.WithAttemptTimeout(time.Second), standard.WithRetries(1), standard.WithRetry(retry.WithJitter(0)),
			standard.WithBulkhead(4), standard.WithRateLimit(100, 10))
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
		ctx, span := h.Span(ctx)
		n := 0
		err = p.Do(ctx, func(ctx context.Context) error {
			if n++; n == 1 {
				<-ctx.Done() // the first attempt hangs until its timeout
				return ctx.Err()
			}
			return nil
		})
		span.End()
		if err != nil {
			t.Fatal(err)
		}

		ms := h.Collect(t)
		const callKV = "http.request.method=GET server.address=api.example.com server.port=443 "
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		wantEvents := telemetrytest.Want(map[string]int64{
			callKV + "resilience.event=expired resilience.name=users.attempt resilience.policy=timeout": 1,
			callKV + "resilience.event=scheduled resilience.name=users resilience.policy=retry":         1,
		})
		if !maps.Equal(events, wantEvents) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
		}
		state := telemetrytest.Points(t, ms, "resilience.breaker.state", "{breaker}")
		if got := state["resilience.breaker.state=closed resilience.name=users server.address=api.example.com server.port=443"]; got != 1 || len(state) != 3 {
			t.Errorf("resilience.breaker.state: got %v, want three series (1 for closed), the breaker of api.example.com:443", state)
		}
		inFlight := telemetrytest.Points(t, ms, "resilience.bulkhead.in_flight", "{call}")
		if want := map[string]int64{"resilience.name=users server.address=api.example.com server.port=443": 0}; !maps.Equal(inFlight, want) {
			t.Errorf("resilience.bulkhead.in_flight: got %v, want %v", inFlight, want)
		}
		attempts := telemetrytest.Counts(t, ms, "resilience.attempt.duration", "s")
		wantAttempts := telemetrytest.Want(map[string]uint64{
			callKV + "error.type=timeout resilience.attempt=1 resilience.name=users resilience.outcome=transient": 1,
			callKV + "resilience.attempt=2 resilience.name=users resilience.outcome=success":                      1,
		})
		if !maps.Equal(attempts, wantAttempts) {
			t.Errorf("resilience.attempt.duration counts:\ngot  %v\nwant %v", attempts, wantAttempts)
		}
		if evs := h.Events(t, "caller"); len(evs) != 2 || evs[0].Name != "resilience.timeout.expired" || evs[1].Name != "resilience.retry.scheduled" {
			t.Errorf("caller's span events: got %v, want the attempt's expiry then the retry", evs)
		}
	})
}

// BenchmarkTelemetry compares the success path of the standard pipeline
// with telemetry switched off (no-op providers), with the global providers
// and no SDK installed (the default), and with the SDK installed.
func BenchmarkTelemetry(b *testing.B) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
	op := func(context.Context) error { return nil }
	run := func(b *testing.B, opts ...standard.Option) {
		p, err := standard.New(append(opts, standard.WithBulkhead(1000), standard.WithRateLimit(1e9, 1e9))...)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			p.Do(ctx, op)
		}
	}
	b.Run("disabled", func(b *testing.B) {
		run(b, standard.WithMeterProvider(metricnoop.NewMeterProvider()), standard.WithTracerProvider(tracenoop.NewTracerProvider()))
	})
	b.Run("global-no-sdk", func(b *testing.B) { run(b) })
	b.Run("sdk", func(b *testing.B) {
		h := telemetrytest.New(b)
		run(b, standard.WithMeterProvider(h.MeterProvider), standard.WithTracerProvider(h.TracerProvider))
	})
}
