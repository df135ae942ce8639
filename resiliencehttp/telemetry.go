package resiliencehttp

import (
	"net/http"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
)

// MarkResends returns a RoundTripper that sends requests through next (nil
// means http.DefaultTransport) after recording, on the recording span in
// each request's context, the OpenTelemetry attribute
// http.request.resend_count: the attempt number minus one, set on retries
// only, as the HTTP semantic conventions ask.
//
// It is meant to sit inside a tracing transport that starts one client span
// per request, itself the Base of a [Transport], so that each attempt gets
// its own span:
//
//	base := otelhttp.NewTransport(resiliencehttp.MarkResends(nil))
//	client := &http.Client{Transport: resiliencehttp.NewTransport(base, policies...)}
//
// The attempt number comes from the request's context (see
// resilience.AttemptNumber); outside a Transport every request is a first
// attempt and nothing is recorded. MarkResends does not modify the request.
func MarkResends(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return markResends{next}
}

type markResends struct{ next http.RoundTripper }

func (m markResends) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if n := resilience.AttemptNumber(ctx); n > 1 {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(semconv.HTTPRequestResendCount(n - 1))
		}
	}
	return m.next.RoundTrip(req)
}
