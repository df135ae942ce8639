package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

func Example() {
	p := resilience.Chain(
		timeout.New(time.Second), // the whole call
		retry.New(retry.WithBackoff(time.Millisecond, 10*time.Millisecond)),
		timeout.New(100*time.Millisecond), // each attempt
	)
	attempts := 0
	greeting, err := resilience.Do(context.Background(), p, func(ctx context.Context) (string, error) {
		attempts++
		if attempts == 1 {
			return "", errors.New("connection reset by peer") // transient: retried
		}
		return "hello", nil
	})
	fmt.Println(greeting, err, attempts)
	// Output: hello <nil> 2
}

func ExampleMark() {
	errNotFound := errors.New("user not found")
	p := retry.New()
	attempts := 0
	err := p.Do(context.Background(), func(context.Context) error {
		attempts++
		// Retrying will not make the user appear: say so.
		return resilience.Mark(errNotFound, resilience.KindRejected)
	})
	fmt.Println(errors.Is(err, errNotFound), resilience.Classify(err), attempts)
	// Output: true rejected 1
}

func ExampleWithCall() {
	// A call that is not idempotent is never sent twice, whatever fails.
	ctx := resilience.WithCall(context.Background(), resilience.Call{
		Target:     "payments.internal:443",
		Method:     "POST",
		Idempotent: false,
	})
	attempts := 0
	retry.New().Do(ctx, func(context.Context) error {
		attempts++
		return errors.New("connection reset by peer")
	})
	fmt.Println(attempts)
	// Output: 1
}

func ExampleChain() {
	logging := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		err := op(ctx)
		fmt.Printf("attempt %d: %v\n", resilience.AttemptNumber(ctx), err)
		return err
	})
	p := resilience.Chain(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond)), logging)
	n := 0
	p.Do(context.Background(), func(context.Context) error {
		if n++; n < 3 {
			return errors.New("unavailable")
		}
		return nil
	})
	// Output:
	// attempt 1: unavailable
	// attempt 2: unavailable
	// attempt 3: <nil>
}
