package redisrate_test

import (
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
)

func Example() {
	// Every replica builds the same limiter on the same Redis: together
	// they admit 100 requests a minute per tenant.
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	lim := redisrate.New(rdb, ratelimit.Quota{Name: "tenant", Limit: 100, Window: time.Minute})
	api := http.NewServeMux()
	srv := &http.Server{Addr: ":8080", Handler: ratelimit.Middleware(lim, func(r *http.Request) string {
		return r.Header.Get("X-Tenant")
	})(api)}
	_ = srv // srv.ListenAndServe()
}

func ExampleWithLease() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()
	// 10,000 requests a second per API key, shared by the replicas. Each
	// replica takes 50 at a time from Redis: one round trip per 50
	// requests, and at most 50 per replica beyond the quota.
	lim := redisrate.New(rdb, ratelimit.Quota{Name: "key", Limit: 10_000, Window: time.Second},
		redisrate.WithLease(50, 100*time.Millisecond))
	_ = lim
}

func ExampleWithMode() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()
	// A login endpoint: better refuse than let a flood through while
	// Redis is down.
	lim := redisrate.New(rdb, ratelimit.Quota{Name: "login", Limit: 5, Window: time.Minute},
		redisrate.WithMode(redisrate.FailClosed))
	_ = lim
}
