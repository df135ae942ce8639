package shed_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/resilience-go/resilience/shed"
)

// BenchmarkAcquire is the cost of admitting a request with a free slot
// and releasing it.
func BenchmarkAcquire(b *testing.B) {
	s := shed.New(shed.Fixed(1024), shed.WithMeterProvider(metricnoop.NewMeterProvider()), shed.WithTracerProvider(tracenoop.NewTracerProvider()))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rel, err := s.Acquire(ctx, shed.Default)
			if err != nil {
				b.Fatal(err)
			}
			rel()
		}
	})
}

// BenchmarkMiddleware is the cost of the middleware around a handler that
// does nothing, with the global providers (no SDK installed).
func BenchmarkMiddleware(b *testing.B) {
	h := shed.Middleware(shed.New(shed.Fixed(1024)))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(shed.PriorityHeader, "critical")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
