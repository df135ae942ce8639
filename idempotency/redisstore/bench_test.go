package redisstore_test

import (
	"testing"

	"github.com/resilience-go/resilience/idempotency/redisstore"
	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/internal/storetest"
)

// BenchmarkMiddleware measures what the middleware adds to a request with
// the Redis store, Redis on loopback; see storetest.BenchMiddleware.
func BenchmarkMiddleware(b *testing.B) {
	srv := redistest.Start(b)
	storetest.BenchMiddleware(b, redisstore.New(client(b, srv)))
}
