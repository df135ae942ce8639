package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
)

func Example() {
	b := breaker.New(
		breaker.WithConsecutiveFailures(3),
		breaker.WithOpenDuration(10*time.Second),
		breaker.WithOnStateChange(func(name string, from, to breaker.State) {
			fmt.Printf("breaker %s: %v -> %v\n", name, from, to)
		}),
		breaker.WithName("payments"),
	)
	down := func(context.Context) error { return errors.New("connection refused") }
	for range 3 {
		b.Do(context.Background(), down)
	}

	err := b.Do(context.Background(), down)
	fmt.Println(errors.Is(err, breaker.ErrOpen))
	var oe *breaker.OpenError
	if errors.As(err, &oe) {
		fmt.Println("next probe within", oe.RetryIn.Round(time.Second))
	}
	// Output:
	// breaker payments: closed -> open
	// true
	// next probe within 10s
}

// A keyed breaker keeps one breaker per target host.
func ExampleNewKeyed() {
	k := breaker.NewKeyed(breaker.WithConsecutiveFailures(1))
	call := func(host string, op func(context.Context) error) error {
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: host, Idempotent: true})
		return k.Do(ctx, op)
	}
	call("a.example:443", func(context.Context) error { return errors.New("timeout") })

	fmt.Println(k.State("a.example:443"), k.State("b.example:443"))
	fmt.Println(call("b.example:443", func(context.Context) error { return nil }))
	// Output:
	// open closed
	// <nil>
}
