package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/throttle"
)

func Example() {
	th := throttle.New(throttle.WithMaxProbability(1)) // the SRE book's formula, uncapped
	overloaded := func(context.Context) error {
		return resilience.Mark(errors.New("429 Too Many Requests"), resilience.KindThrottled)
	}
	ctx := context.Background()
	for range 100 {
		th.Do(ctx, overloaded) // every call refused
	}
	fmt.Printf("probability of rejection: %.2f\n", th.Probability())

	err := th.Do(ctx, overloaded)
	for !errors.Is(err, throttle.ErrRejected) {
		err = th.Do(ctx, overloaded)
	}
	fmt.Println(resilience.Classify(err))
	// Output:
	// probability of rejection: 0.99
	// refused
}

// Per host, per attempt: inside the retry, outside the breaker.
func ExampleNewKeyed() {
	client := &http.Client{Transport: resiliencehttp.NewTransport(nil, retry.New(), throttle.NewKeyed(), breaker.NewKeyed())}
	_ = client
	// Output:
}
