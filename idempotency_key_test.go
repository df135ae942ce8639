package resilience_test

import (
	"context"
	"sync"
	"testing"

	"github.com/resilience-go/resilience"
)

func TestWithIdempotencyKey(t *testing.T) {
	bg := context.Background()
	if ctx := resilience.WithIdempotencyKey(bg, "k"); ctx != bg {
		t.Error("outside any call: the context changed")
	}
	call := resilience.Call{Target: "api:443", Method: "POST"}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	cctx := resilience.WithCall(ctx, call)
	kctx := resilience.WithIdempotencyKey(cctx, "k-1")

	want := call
	want.Idempotent, want.IdempotencyKey = true, "k-1"
	if got, ok := resilience.CallFrom(kctx); !ok || got != want {
		t.Errorf("CallFrom: got %+v, want %+v", got, want)
	}
	if got, _ := resilience.CallFrom(cctx); got != call {
		t.Errorf("the outer context's call changed: %+v", got)
	}
	actx, at := resilience.StartAttempt(kctx, 2)
	if got, _ := resilience.CallFrom(actx); got != want || resilience.AttemptNumber(actx) != 2 {
		t.Errorf("in an attempt: got %+v (attempt %d), want %+v", got, resilience.AttemptNumber(actx), want)
	}
	// The attempt's result still reaches the call's cell through the key's
	// context: a release deferred on the call waits for the held body.
	done := resilience.Hold(actx, nil)
	at.Keep()
	released := false
	resilience.Defer(kctx, func(error) { released = true })
	if released {
		t.Fatal("released while the attempt's result is held")
	}
	done(nil)
	if !released {
		t.Error("not released when the held result ended")
	}
	// Cancellation follows.
	dctx, dcancel := context.WithCancel(kctx)
	defer dcancel()
	cancel()
	<-dctx.Done()
}

// TestIdempotencyKeyInParallelAttempts starts attempts at once, as hedging
// does: each sees the key, and none races with another (-race).
func TestIdempotencyKeyInParallelAttempts(t *testing.T) {
	ctx := resilience.WithIdempotencyKey(resilience.WithCall(context.Background(), resilience.Call{Method: "POST"}), "k")
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Go(func() {
			actx, at := resilience.StartAttempt(ctx, i+1)
			defer at.Discard()
			c, _ := resilience.CallFrom(actx)
			keys[i] = c.IdempotencyKey
		})
	}
	wg.Wait()
	for i, k := range keys {
		if k != "k" {
			t.Errorf("attempt %d: key %q, want k", i+1, k)
		}
	}
}
