package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience/ratelimit"
)

func Example() {
	// One call every 100ms on average, bursts of 2, and no waiting.
	l := ratelimit.New(rate.Every(100*time.Millisecond), 2)
	op := func(context.Context) error { return nil }
	for i := range 3 {
		err := l.Do(context.Background(), op)
		var le *ratelimit.LimitedError
		if errors.As(err, &le) {
			fmt.Printf("call %d: limited, wait up to %v\n", i+1, le.Wait.Round(10*time.Millisecond))
			continue
		}
		fmt.Printf("call %d: %v\n", i+1, err)
	}
	// Output:
	// call 1: <nil>
	// call 2: <nil>
	// call 3: limited, wait up to 100ms
}

func ExampleMiddleware() {
	// Two requests a minute per client address, in one process.
	lim := ratelimit.NewLocal(ratelimit.Quota{Name: "ip", Limit: 2, Window: time.Minute})
	h := ratelimit.Middleware(lim, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		fmt.Printf("%d RateLimit-Policy: %s  RateLimit: %s  Retry-After: %q\n",
			rec.Code, rec.Header().Get("RateLimit-Policy"), rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After"))
	}
	// The quota is per client address: pk names the partition (a digest of
	// the address, 192.0.2.1), so that r=0 reads as this client's quota
	// spent, not the server's.
	// Output:
	// 200 RateLimit-Policy: "ip";q=2;w=60;pk=:N/z/JL9iA1srCAIK:  RateLimit: "ip";r=1;t=30;pk=:N/z/JL9iA1srCAIK:  Retry-After: ""
	// 200 RateLimit-Policy: "ip";q=2;w=60;pk=:N/z/JL9iA1srCAIK:  RateLimit: "ip";r=0;t=30;pk=:N/z/JL9iA1srCAIK:  Retry-After: ""
	// 429 RateLimit-Policy: "ip";q=2;w=60;pk=:N/z/JL9iA1srCAIK:  RateLimit: "ip";r=0;t=30;pk=:N/z/JL9iA1srCAIK:  Retry-After: "30"
}

func ExampleGlobal() {
	// One quota for the whole server, and one per tenant: the server-wide
	// items carry no pk, the tenant's name its partition.
	server := ratelimit.NewLocal(ratelimit.Quota{Name: "server", Limit: 10_000, Window: time.Second})
	tenant := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 100, Window: time.Minute})
	mw := ratelimit.Middleware(server, ratelimit.Global,
		ratelimit.WithLimit(tenant, func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Tenant", "acme")
	rec := httptest.NewRecorder()
	mw(http.NotFoundHandler()).ServeHTTP(rec, req)
	fmt.Println(rec.Header().Get("RateLimit-Policy"))
	fmt.Println(rec.Header().Get("RateLimit"))
	// Output:
	// "server";q=10000;w=1, "tenant";q=100;w=60;pk=:giszrYfBSKCiClun:
	// "server";r=9999;t=1, "tenant";r=99;t=1;pk=:giszrYfBSKCiClun:
}

func ExampleWithLimit() {
	// Per tenant and per endpoint: a request needs both.
	tenant := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 1000, Window: time.Hour})
	search := ratelimit.NewLocal(ratelimit.Quota{Name: "endpoint", Limit: 10, Window: time.Second})
	mw := ratelimit.Middleware(tenant, func(r *http.Request) string { return r.Header.Get("X-Tenant") },
		ratelimit.WithLimit(search, func(r *http.Request) string { return r.URL.Path }))
	req := httptest.NewRequest("GET", "/search", nil)
	req.Header.Set("X-Tenant", "acme")
	rec := httptest.NewRecorder()
	mw(http.NotFoundHandler()).ServeHTTP(rec, req)
	fmt.Println(rec.Header().Get("RateLimit-Policy"))
	// Output:
	// "tenant";q=1000;w=3600;pk=:giszrYfBSKCiClun:, "endpoint";q=10;w=1;pk=:b7W3eH7KzZERCYx8:
}
