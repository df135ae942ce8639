package idempotency_test

import (
	"context"
	"errors"
	"testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
)

// TestZeroValues: a zero Guard is not usable and says so with an error
// (never a panic at call time); a zero Keyer stamps nothing.
func TestZeroValues(t *testing.T) {
	var g idempotency.Guard
	ran := false
	_, err := g.Run(context.Background(), "", "k", "fp", func(context.Context) ([]byte, idempotency.Outcome) {
		ran = true
		return nil, idempotency.Record
	})
	if !errors.Is(err, idempotency.ErrStore) || ran {
		t.Errorf("zero Guard: got %v (ran %v), want an error matching ErrStore and no run", err, ran)
	}
	if g.MaxKeyLength() != idempotency.DefaultMaxKeyLength || g.MaxResponse() != idempotency.DefaultMaxResponse {
		t.Errorf("zero Guard bounds: %d, %d; want the defaults", g.MaxKeyLength(), g.MaxResponse())
	}

	var k idempotency.Keyer
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443", Method: "POST"})
	if err := k.Do(ctx, func(ctx context.Context) error {
		if c, _ := resilience.CallFrom(ctx); c.IdempotencyKey != "" {
			t.Errorf("zero Keyer stamped %q", c.IdempotencyKey)
		}
		return nil
	}); err != nil {
		t.Errorf("zero Keyer: %v", err)
	}
}
