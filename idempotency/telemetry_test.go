package idempotency_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func TestTelemetry(t *testing.T) {
	h := telemetrytest.New(t)
	tel := []idempotency.Option{idempotency.WithName("pay"),
		idempotency.WithMeterProvider(h.MeterProvider), idempotency.WithTracerProvider(h.TracerProvider)}
	ctx, span := h.Span(context.Background())

	g := idempotency.NewGuard(idempotency.NewMemoryStore(idempotency.WithMaxEntries(4)), append(tel, idempotency.WithMaxResponse(4))...)
	record := func(resp string) func(context.Context) ([]byte, idempotency.Outcome) {
		return func(context.Context) ([]byte, idempotency.Outcome) { return []byte(resp), idempotency.Record }
	}
	g.Run(ctx, "", "a", "fp", record("ok"))
	if res, _ := g.Run(ctx, "", "a", "fp", record("no")); !res.Replayed {
		t.Fatal("no replay")
	}
	if _, err := g.Run(ctx, "", "a", "other", record("no")); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("got %v, want ErrMismatch", err)
	}
	g.Run(ctx, "", "b", "fp", func(ctx context.Context) ([]byte, idempotency.Outcome) {
		if _, err := g.Run(ctx, "", "b", "fp", record("no")); !errors.Is(err, idempotency.ErrInFlight) {
			t.Errorf("got %v, want ErrInFlight", err)
		}
		return nil, idempotency.Release
	})
	g.Run(ctx, "", "throttled", "fp", func(context.Context) ([]byte, idempotency.Outcome) { return nil, idempotency.NotProcessed })
	g.Run(ctx, "", "c", "fp", record("too large"))
	g.Run(ctx, "", "d", "fp", record("ok"))
	g.Run(ctx, "", "e", "fp", record("ok"))
	g.Run(ctx, "", "f", "fp", record("ok"))
	if _, err := g.Run(ctx, "", "g", "fp", record("ok")); !errors.Is(err, idempotency.ErrStore) {
		t.Fatalf("got %v, want ErrStore (the store is full)", err)
	}

	mw := idempotency.Middleware(idempotency.NewMemoryStore(), tel...)(http.NotFoundHandler())
	r := httptest.NewRequestWithContext(ctx, "POST", "/", nil)
	r.Header.Set("Idempotency-Key", "bare")
	mw.ServeHTTP(httptest.NewRecorder(), r)

	k := idempotency.NewKeyer([]string{"*"}, tel...)
	cctx := resilience.WithCall(ctx, resilience.Call{Target: "api.example.com:443", Method: "POST"})
	k.Do(cctx, func(context.Context) error { return nil })
	span.End()

	const base = "resilience.name=pay resilience.policy=idempotency "
	got := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	want := telemetrytest.Want(map[string]int64{
		base + "resilience.event=replayed":                                                                        1,
		base + "resilience.event=mismatch":                                                                        1,
		base + "resilience.event=conflict":                                                                        1,
		base + "resilience.event=released resilience.reason=server_error":                                         1,
		base + "resilience.event=released resilience.reason=not_processed":                                        1,
		base + "resilience.event=released resilience.reason=too_large":                                            1,
		base + "resilience.event=store_error resilience.reason=reserve":                                           1,
		base + "resilience.event=rejected resilience.reason=malformed":                                            1,
		base + "resilience.event=stamped http.request.method=POST server.address=api.example.com server.port=443": 1,
	})
	if !maps.Equal(got, want) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", got, want)
	}
	var names []string
	for _, e := range h.Events(t, "caller") {
		names = append(names, e.Name+" "+e.Attrs)
	}
	wantEvents := []string{
		"resilience.idempotency.replayed resilience.name=pay",
		"resilience.idempotency.mismatch resilience.name=pay",
		"resilience.idempotency.conflict resilience.name=pay",
		"resilience.idempotency.released resilience.name=pay resilience.reason=server_error",
		"resilience.idempotency.released resilience.name=pay resilience.reason=not_processed",
		"resilience.idempotency.released resilience.name=pay resilience.reason=too_large",
		"resilience.idempotency.store_error resilience.name=pay resilience.reason=reserve",
		"resilience.idempotency.rejected resilience.name=pay resilience.reason=malformed",
		"resilience.idempotency.stamped resilience.name=pay",
	}
	if !slices.Equal(names, wantEvents) {
		t.Errorf("span events:\ngot  %q\nwant %q", names, wantEvents)
	}
}
