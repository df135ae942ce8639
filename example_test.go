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

// lookup is an adapter's per-call state, run by the policies as a value:
// DoCall takes a pointer the adapter already has, where a closure would be
// one more allocation per call.
type lookup struct {
	key      string
	attempts int
	result   string
}

func (l *lookup) Run(ctx context.Context) error {
	l.attempts++
	if l.attempts == 1 {
		return errors.New("connection reset by peer") // transient: retried
	}
	l.result = "value of " + l.key
	return nil
}

func ExampleDoCall() {
	p := resilience.Chain(
		timeout.New(time.Second),
		retry.New(retry.WithBackoff(time.Millisecond, 10*time.Millisecond)),
	)
	l := &lookup{key: "user:42"}
	err := resilience.DoCall(context.Background(), p, resilience.Call{
		Target:     "cache.internal:6379",
		Method:     "GET",
		Idempotent: true,
	}, l)
	fmt.Println(l.result, err, l.attempts)
	// Output: value of user:42 <nil> 2
}

// body is a result read after the operation returned, such as a response
// body: it is its own Discarder, so holding it allocates nothing.
type body struct{ closed bool }

func (b *body) Discard() { b.closed = true }

func ExampleHoldWith() {
	ctx := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
	var h resilience.Holding
	b := &body{}
	resilience.Chain(retry.New()).Do(ctx, func(ctx context.Context) error {
		// The operation returns before its result is read: hold it, so
		// that what the policies took for it (a bulkhead's slot, a
		// breaker's outcome) stays taken until the reader is done.
		h = resilience.HoldWith(ctx, b)
		return nil
	})
	fmt.Println("held:", resilience.Held(ctx))
	h.Done(nil) // the reader finished
	fmt.Println("held:", resilience.Held(ctx), "discarded:", b.closed)
	// Output:
	// held: true
	// held: false discarded: false
}
