package adaptive_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/resiliencehttp"
)

func Example() {
	l := adaptive.New(adaptive.WithLimits(1, 1)) // one call at a time, to show a rejection

	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443"})
	err := l.Do(ctx, func(ctx context.Context) error {
		// The only slot is taken: a second call is turned away at once.
		err := l.Do(ctx, func(context.Context) error { return nil })
		fmt.Println(err)
		fmt.Println(errors.Is(err, adaptive.ErrLimited), resilience.Classify(err))
		return nil
	})
	fmt.Println("outer call:", err)
	// Output:
	// adaptive: concurrency limit reached for api.example.com:443 (limit 1, limit)
	// true throttled
	// outer call: <nil>
}

// One limit per host, in an HTTP client: place it where a bulkhead goes,
// inside a breaker and a retry.
func ExampleNewKeyed() {
	client := &http.Client{Transport: resiliencehttp.NewTransport(nil, adaptive.NewKeyed())}
	_ = client
	// Output:
}
