package hedge_test

import (
	"context"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/hedge"
)

func Example() {
	p := hedge.New(hedge.WithDelay(20*time.Millisecond), hedge.WithBudget(budget.New()))
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "search:443", Method: "GET", Idempotent: true})

	// The first attempt hangs; the hedge sent after 20ms answers.
	v, err := resilience.Do(ctx, p, func(ctx context.Context) (string, error) {
		if resilience.AttemptNumber(ctx) == 1 {
			<-ctx.Done() // cancelled once the hedge won
			return "", ctx.Err()
		}
		return fmt.Sprintf("answer from attempt %d", resilience.AttemptNumber(ctx)), nil
	})
	fmt.Println(v, err)
	// Output: answer from attempt 2 <nil>
}
