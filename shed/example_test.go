package shed_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/resilience-go/resilience/shed"
)

// A server that runs one request at a time, sheds the rest, never sheds
// its health check, and drains on shutdown.
func Example() {
	s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0))
	var h http.Handler
	h = shed.Middleware(s,
		shed.WithHealthCheck(func(r *http.Request) bool { return r.URL.Path == "/healthz" }),
	)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/report" {
			// While this request runs, the server is full.
			for _, path := range []string{"/search", "/healthz"} {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set(shed.PriorityHeader, "critical")
				h.ServeHTTP(rec, req)
				fmt.Printf("%s %d Retry-After=%q\n", path, rec.Code, rec.Header().Get("Retry-After"))
			}
		}
		w.WriteHeader(http.StatusOK)
	}))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/report", nil))
	fmt.Println("/report", rec.Code)

	// Shutdown: stop admitting, wait for the requests in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println("drained:", s.Drain(ctx))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/search", nil))
	fmt.Println("/search", rec.Code, "Connection:", rec.Header().Get("Connection"))
	// Output:
	// /search 503 Retry-After="1"
	// /healthz 200 Retry-After=""
	// /report 200
	// drained: <nil>
	// /search 503 Connection: close
}

// Moving from a fixed bound to an adaptive one changes only the Limiter.
func ExampleNew() {
	s := shed.New(shed.Fixed(64), // or an adaptive Limiter
		shed.WithQueue(100, 50*time.Millisecond),
		shed.WithName("api"))
	running, queued := s.InFlight()
	fmt.Println(running, queued)
	// Output: 0 0
}
