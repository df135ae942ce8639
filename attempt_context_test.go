package resilience_test

import (
	"context"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

func TestAttemptContext(t *testing.T) {
	if _, ok := resilience.AttemptContext(t.Context()); ok {
		t.Error("AttemptContext outside any call: ok")
	}
	call := resilience.WithCall(t.Context(), resilience.Call{Target: "svc:443"})
	if _, ok := resilience.AttemptContext(call); ok {
		t.Error("AttemptContext outside any attempt: ok")
	}
	outer, cancel := context.WithTimeout(call, time.Hour)
	defer cancel()
	actx, at := resilience.StartAttempt(outer, 1)
	defer at.Keep()
	inner, cancelInner := context.WithTimeout(actx, time.Millisecond)
	defer cancelInner()
	got, ok := resilience.AttemptContext(inner)
	if !ok || got != actx {
		t.Fatalf("AttemptContext = %v, %v; want the attempt's context", got, ok)
	}
	<-inner.Done()
	if got.Err() != nil {
		t.Errorf("the attempt's context ended with the timeout inside it: %v", got.Err())
	}
	if dl, _ := got.Deadline(); dl.Before(time.Now().Add(time.Minute)) {
		t.Errorf("deadline %v, want the one outside the attempt", dl)
	}
}
