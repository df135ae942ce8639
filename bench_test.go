package resilience_test

import (
	"context"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// BenchmarkDo measures the success path of Do with a timeout and retry,
// against calling the operation directly.
func BenchmarkDo(b *testing.B) {
	ctx := context.Background()
	op := func(context.Context) (int, error) { return 1, nil }
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := op(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		p    resilience.Policy
	}{
		{"chain-empty", resilience.Chain()},
		{"retry", retry.New()},
		{"timeout", timeout.New(time.Second)},
		{"timeout+retry", resilience.Chain(timeout.New(time.Second), retry.New())},
		{"timeout+retry+timeout", resilience.Chain(timeout.New(30*time.Second), retry.New(), timeout.New(10*time.Second))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := resilience.Do(ctx, bc.p, op); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
