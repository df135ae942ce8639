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

	// Open: the call fails at once, and asks no retry policy to retry it.
	err := b.Do(context.Background(), down)
	fmt.Println(errors.Is(err, breaker.ErrOpen), resilience.Classify(err))
	var oe *breaker.OpenError
	if errors.As(err, &oe) {
		fmt.Println("next probe within", oe.RetryIn.Round(time.Second))
	}
	// Output:
	// breaker payments: closed -> open
	// true refused
	// next probe within 10s
}

// With WithWaitForProbe, a call turned away asks a retry policy to come
// back after the next probe, each caller with its own random delay.
func ExampleWithWaitForProbe() {
	b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(4*time.Second), breaker.WithWaitForProbe())
	b.Do(context.Background(), func(context.Context) error { return errors.New("connection refused") })

	err := b.Do(context.Background(), func(context.Context) error { return nil })
	d, ok := resilience.RetryAfter(err)
	fmt.Println(resilience.Classify(err), ok, d > 4*time.Second && d <= 5*time.Second+time.Millisecond)
	// Output:
	// throttled true true
}

// Calls slower than a threshold count as slow, and open the breaker when
// they are a large enough share of the calls.
func ExampleWithSlowCalls() {
	b := breaker.New(
		breaker.WithSlowCalls(50*time.Millisecond, 0.8), // below the attempt timeout
		breaker.WithFailureRatio(0.5, 3),
	)
	slow := func(context.Context) error { time.Sleep(60 * time.Millisecond); return nil }
	for range 3 {
		b.Do(context.Background(), slow)
	}
	fmt.Println(b.State())
	// Output:
	// open
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
