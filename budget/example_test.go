package budget_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/retry"
)

func Example() {
	b := budget.New(budget.WithCapacity(10), budget.WithCost(5))
	p := retry.New(retry.WithBudget(b), retry.WithBackoff(time.Millisecond, time.Millisecond))

	down := func(context.Context) error { return errors.New("503 Service Unavailable") }
	for i := range 4 {
		attempts := 0
		err := p.Do(context.Background(), func(ctx context.Context) error { attempts++; return down(ctx) })
		fmt.Printf("call %d: %d attempt(s), budget exhausted: %v, %d tokens left\n",
			i+1, attempts, errors.Is(err, budget.ErrExhausted), b.Tokens())
	}
	// Output:
	// call 1: 3 attempt(s), budget exhausted: true, 0 tokens left
	// call 2: 1 attempt(s), budget exhausted: true, 0 tokens left
	// call 3: 1 attempt(s), budget exhausted: true, 0 tokens left
	// call 4: 1 attempt(s), budget exhausted: true, 0 tokens left
}

func ExampleBudget_TryWithdraw() {
	b := budget.New(budget.WithCapacity(5), budget.WithCost(5), budget.WithReward(1))
	fmt.Println(b.TryWithdraw(), b.TryWithdraw(), b.Tokens())
	for range 5 {
		b.Deposit() // five successful calls
	}
	fmt.Println(b.TryWithdraw(), b.Tokens())
	b.Refund() // the retry succeeded
	fmt.Println(b.Tokens())
	// Output:
	// true false 0
	// true 0
	// 5
}
