package redisstore_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/idempotency/redisstore"
)

// Every instance of the service builds the same middleware on the same
// Redis: a request runs once whichever instance receives it.
func Example() {
	rdb := redis.NewClient(&redis.Options{
		Addr: "localhost:6379",
		// Bound how long a request waits for the store (with go-redis's
		// defaults, a frozen Redis held it 10 seconds);
		// past that it fails with 503 (or runs, with
		// idempotency.WithFailOpen).
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		PoolTimeout:  200 * time.Millisecond,
		MaxRetries:   -1,
	})
	defer rdb.Close()

	charge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "charged")
	})
	mw := idempotency.Middleware(redisstore.New(rdb),
		idempotency.WithRequired("POST"),
		idempotency.WithLease(30*time.Second)) // above the handler's own timeout
	http.Handle("POST /charges", mw(charge))
}
