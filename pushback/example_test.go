package pushback_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/pushback"
)

// A 429 with Retry-After closes the gate for that host; a caller whose
// deadline ends before it reopens is turned away at once, and another host
// is not affected.
func Example() {
	g := pushback.New()
	do := func(host string, timeout time.Duration, op func(context.Context) error) error {
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: host, Idempotent: true})
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return g.Do(ctx, op)
	}
	tooMany := func(context.Context) error {
		return resilience.MarkRetryAfter(errors.New("429 Too Many Requests"), resilience.KindThrottled, time.Minute)
	}
	fmt.Println(do("api.example:443", time.Second, tooMany))

	err := do("api.example:443", time.Second, func(context.Context) error { return nil })
	var ce *pushback.ClosedError
	fmt.Println(errors.Is(err, pushback.ErrClosed), errors.As(err, &ce) && time.Until(ce.Until) > 9*time.Second)

	fmt.Println(do("other.example:443", time.Second, func(context.Context) error { return nil }))
	// Output:
	// 429 Too Many Requests
	// true true
	// <nil>
}
