package idempotency_test

import (
	"testing"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/internal/storetest"
)

// BenchmarkMiddleware measures what the middleware adds to a request with
// the in-memory store; see storetest.BenchMiddleware. The store is sized
// for the millions of new keys a benchmark run makes.
func BenchmarkMiddleware(b *testing.B) {
	storetest.BenchMiddleware(b, idempotency.NewMemoryStore(idempotency.WithMaxEntries(1<<24), idempotency.WithMaxBytes(8<<30)))
}
