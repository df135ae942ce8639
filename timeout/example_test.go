package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience/timeout"
)

func Example() {
	p := timeout.New(10 * time.Millisecond)
	err := p.Do(context.Background(), func(ctx context.Context) error {
		<-ctx.Done() // a dependency that never answers
		return ctx.Err()
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, timeout.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// timeout: exceeded 10ms: context deadline exceeded
	// true true
}
