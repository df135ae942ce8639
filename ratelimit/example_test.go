package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience/ratelimit"
)

func Example() {
	// One call every 100ms on average, bursts of 2, and no waiting.
	l := ratelimit.New(rate.Every(100*time.Millisecond), 2)
	op := func(context.Context) error { return nil }
	for i := range 3 {
		err := l.Do(context.Background(), op)
		var le *ratelimit.LimitedError
		if errors.As(err, &le) {
			fmt.Printf("call %d: limited, wait up to %v\n", i+1, le.Wait.Round(10*time.Millisecond))
			continue
		}
		fmt.Printf("call %d: %v\n", i+1, err)
	}
	// Output:
	// call 1: <nil>
	// call 2: <nil>
	// call 3: limited, wait up to 100ms
}
