package standard_test

import (
	"context"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
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
