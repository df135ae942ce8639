package resilience_test

import (
	"context"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

func TestReportPushback(t *testing.T) {
	if _, ok := resilience.ReportedPushback(context.Background()); ok {
		t.Fatal("outside a call: ReportedPushback ok = true, want false")
	}
	resilience.ReportPushback(context.Background(), time.Second) // must not panic

	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "h"})
	if _, ok := resilience.ReportedPushback(ctx); ok {
		t.Fatal("nothing reported: ok = true, want false")
	}
	actx, at := resilience.StartAttempt(ctx, 1)
	resilience.ReportPushback(actx, 2*time.Second)
	resilience.ReportPushback(actx, time.Second) // shorter: the longest is kept
	if d, ok := resilience.ReportedPushback(actx); !ok || d != 2*time.Second {
		t.Fatalf("attempt: got %v, %v; want 2s, true", d, ok)
	}
	if _, ok := resilience.ReportedPushback(ctx); ok {
		t.Fatal("the call's own cell saw its attempt's pushback; want it kept per attempt")
	}
	at.Discard()

	resilience.ReportPushback(ctx, -time.Second)
	if d, ok := resilience.ReportedPushback(ctx); !ok || d != 0 {
		t.Fatalf("negative: got %v, %v; want 0, true", d, ok)
	}
}
