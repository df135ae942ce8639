package hedge_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/timeout"
)

// resilience.Do through a chain that hedges returns the winner's value,
// even when a cancelled loser returns a value of its own after the winner.
func TestDoThroughChainKeepsWinnersValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := resilience.Chain(timeout.New(time.Minute), hedge.New(hedge.WithDelay(20*time.Millisecond)))
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "search:443", Method: "GET", Idempotent: true})
		v, err := resilience.Do(ctx, p, func(ctx context.Context) (string, error) {
			if resilience.AttemptNumber(ctx) == 1 {
				<-ctx.Done()
				return "loser", ctx.Err()
			}
			return "winner", nil
		})
		if v != "winner" || err != nil {
			t.Fatalf("got %q, %v; want \"winner\", nil", v, err)
		}
	})
}
