package standard_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

func Example() {
	p, err := standard.New(
		standard.WithTotalTimeout(5*time.Second),
		standard.WithAttemptTimeout(time.Second),
		standard.WithBulkhead(50),
		standard.WithBreaker(breaker.WithOpenDuration(10*time.Second)),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "inventory:443", Idempotent: true})
	n, err := resilience.Do(ctx, p, func(ctx context.Context) (int, error) {
		return 42, nil // the outbound call
	})
	fmt.Println(n, err)
	// Output: 42 <nil>
}

func ExampleNew_invalid() {
	_, err := standard.New(standard.WithTotalTimeout(5*time.Second), standard.WithAttemptTimeout(10*time.Second))
	fmt.Println(err)
	// Output: standard: WithAttemptTimeout(10s) is above WithTotalTimeout(5s): lower the one or raise the other
}

func ExampleWithHedging() {
	p, err := standard.New(standard.WithHedging(hedge.WithDelay(10 * time.Millisecond)))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "search:443", Idempotent: true})
	n, err := resilience.Do(ctx, p, func(ctx context.Context) (int, error) {
		if resilience.AttemptNumber(ctx) == 1 {
			<-ctx.Done() // a slow replica: cancelled once the hedge won
			return 0, ctx.Err()
		}
		return resilience.AttemptNumber(ctx), nil
	})
	fmt.Println("answered by attempt", n, err)
	// Output: answered by attempt 2 <nil>
}

func ExampleWithRetryBudget() {
	p, err := standard.New(standard.WithoutBreaker(),
		standard.WithRetryBudget(budget.WithCapacity(10), budget.WithCost(5)),
		standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond)))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "down:443", Idempotent: true})
	for range 3 {
		attempts := 0
		err := p.Do(ctx, func(context.Context) error { attempts++; return errors.New("503") })
		fmt.Println(attempts, errors.Is(err, budget.ErrExhausted))
	}
	// Output:
	// 3 true
	// 1 true
	// 1 true
}
