package resilience_test

import (
	"context"
	"errors"
	"fmt"
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

func TestRetryAfterScope(t *testing.T) {
	base := errors.New("429")
	tests := []struct {
		name  string
		err   error
		d     time.Duration
		scope resilience.PushbackScope
		ok    bool
	}{
		{"unmarked", base, 0, resilience.PushbackDependency, false},
		{"marked without delay", resilience.Mark(base, resilience.KindThrottled), 0, resilience.PushbackDependency, false},
		{"MarkRetryAfter", resilience.MarkRetryAfter(base, resilience.KindThrottled, time.Second), time.Second, resilience.PushbackDependency, true},
		{"request", resilience.MarkScopedRetryAfter(base, resilience.KindThrottled, time.Second, resilience.PushbackRequest), time.Second, resilience.PushbackRequest, true},
		{"call, wrapped", fmt.Errorf("attempt: %w", resilience.MarkScopedRetryAfter(base, resilience.KindThrottled, -time.Second, resilience.PushbackCall)), 0, resilience.PushbackCall, true},
	}
	for _, tt := range tests {
		scope, ok := resilience.RetryAfterScope(tt.err)
		d, _ := resilience.RetryAfter(tt.err)
		if scope != tt.scope || ok != tt.ok || d != tt.d {
			t.Errorf("%s: got %v, %v, %v; want %v, %v, %v", tt.name, scope, ok, d, tt.scope, tt.ok, tt.d)
		}
		if !errors.Is(tt.err, base) {
			t.Errorf("%s: the mark hides the error", tt.name)
		}
	}
	if resilience.MarkScopedRetryAfter(nil, resilience.KindThrottled, time.Second, resilience.PushbackCall) != nil {
		t.Error("MarkScopedRetryAfter(nil, ...) is not nil")
	}
	for s, want := range map[resilience.PushbackScope]string{resilience.PushbackDependency: "dependency", resilience.PushbackRequest: "request", resilience.PushbackCall: "call", 9: "unknown"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}
