package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/retry"
)

func Example() {
	p := retry.New(
		retry.WithMaxAttempts(3),
		retry.WithBackoff(time.Millisecond, 10*time.Millisecond),
	)
	calls := 0
	v, err := resilience.Do(context.Background(), p, func(context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("connection reset")
		}
		return "hello", nil
	})
	fmt.Println(v, err, calls)
	// Output: hello <nil> 3
}

func Example_exhausted() {
	p := retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, time.Millisecond))
	err := p.Do(context.Background(), func(context.Context) error {
		return errors.New("503 Service Unavailable")
	})
	var re *retry.Error
	fmt.Println(errors.As(err, &re), re.Attempts, errors.Is(err, retry.ErrExhausted))
	fmt.Println(err)
	// Output:
	// true 2 true
	// retry: gave up after 2 attempts (attempts exhausted): 503 Service Unavailable
}

func ExampleWithOnRetry() {
	p := retry.New(
		retry.WithMaxAttempts(2),
		retry.WithOnRetry(func(_ context.Context, e retry.Event) {
			fmt.Printf("attempt %d failed (%v); server asked for %v\n", e.Attempt, e.Err, e.Wait)
		}),
	)
	calls := 0
	p.Do(context.Background(), func(context.Context) error {
		if calls++; calls == 1 {
			return resilience.MarkRetryAfter(errors.New("429 Too Many Requests"), resilience.KindThrottled, 0)
		}
		return nil
	})
	// Output: attempt 1 failed (429 Too Many Requests); server asked for 0s
}
