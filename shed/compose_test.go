package shed_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/shed"
)

// TestStandardClientBacksOff composes the library's HTTP client
// (resiliencehttp.Standard) with the middleware at overload: the first
// 503 + Retry-After closes the client's pushback gate for the host, so the
// calls that follow wait at the gate instead of being sent and shed, and
// all of them succeed once the server has room again.
func TestStandardClientBacksOff(t *testing.T) {
	const calls = 40
	var sent, shedCount atomic.Int64
	b := newBlocking()
	s := shed.New(shed.Fixed(2), shed.WithQueue(0, 0))
	inner := shed.Middleware(s)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.ServeHTTP(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			sent.Add(1)
		}
		rec := &statusRecorder{ResponseWriter: w}
		inner.ServeHTTP(rec, r)
		if rec.status == http.StatusServiceUnavailable {
			shedCount.Add(1)
		}
	}))
	defer srv.Close()

	// The server is full: two slow requests hold both slots.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { get(t, srv.URL+"/slow", "") })
		<-b.entered
	}

	tr, err := resiliencehttp.Standard(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	var ok atomic.Int64
	for range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/fast", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("call: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		})
		time.Sleep(5 * time.Millisecond) // 40 calls over 200ms, within the 1s pause
	}
	close(b.release) // room again, before the pause ends
	wg.Wait()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	t.Logf("%d calls: %d requests sent, %d shed", calls, sent.Load(), shedCount.Load())
	if ok.Load() != calls {
		t.Errorf("%d of %d calls succeeded, want all", ok.Load(), calls)
	}
	// Without the gate every call would be sent and shed once: 40 sheds
	// and 80 requests. With it, the calls after the first shed wait.
	if n := shedCount.Load(); n > 5 {
		t.Errorf("%d requests shed, want at most 5: the client did not back off", n)
	}
	if n := sent.Load(); n > calls+5 {
		t.Errorf("%d requests sent for %d calls, want at most %d", n, calls, calls+5)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
