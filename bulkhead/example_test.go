package bulkhead_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/resilience-go/resilience/bulkhead"
)

func Example() {
	b := bulkhead.New(1) // one call at a time; no waiting for a slot

	err := b.Do(context.Background(), func(ctx context.Context) error {
		// The only slot is taken: a second call is turned away at once.
		err := b.Do(ctx, func(context.Context) error { return nil })
		fmt.Println("nested call:", err, errors.Is(err, bulkhead.ErrFull))
		return nil
	})
	fmt.Println("outer call:", err)
	// Output:
	// nested call: bulkhead: full (every slot taken; unclosed response bodies are a common cause) true
	// outer call: <nil>
}
