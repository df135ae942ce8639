package resilience_test

import (
	"context"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

func TestWithoutCall(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithTimeout(context.WithValue(t.Context(), key{}, "v"), time.Hour)
	ctx := resilience.WithCall(parent, resilience.Call{Target: "client", Method: "/s/M"})
	actx, at := resilience.StartAttempt(ctx, 2)
	in := resilience.WithoutCall(actx)
	if _, ok := resilience.CallFrom(in); ok {
		t.Error("CallFrom reports a call through WithoutCall")
	}
	if n := resilience.AttemptNumber(in); n != 1 {
		t.Errorf("AttemptNumber = %d, want 1 outside any call", n)
	}
	if in.Value(key{}) != "v" {
		t.Error("other values must pass through")
	}
	if _, ok := in.Deadline(); !ok {
		t.Error("the deadline must pass through")
	}
	// Holding through it holds nothing of the call's.
	resilience.Hold(in, nil)
	if resilience.Held(actx) {
		t.Error("a result held through WithoutCall holds the call's attempt")
	}
	at.Discard()
	child, stop := context.WithCancel(in)
	defer stop()
	cancel()
	<-child.Done() // cancellation passes through
}
