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
// (resiliencehttp.Standard) with the middleware at overload. A 503 +
// Retry-After is one request's answer (a server may shed part of its
// load): it closes the client's pushback gate for the host once half of
// the host's last 20 answers were such pushback. For a client new to the
// host that is the first shed; for a client whose last 20 answers were
// served, the tenth. The calls that follow wait at the gate instead of
// being sent and shed, every shed call waits its own Retry-After, and all
// of them succeed once the server has room again.
func TestStandardClientBacksOff(t *testing.T) {
	for _, tt := range []struct {
		name     string
		warm     int // answers served before the overload
		maxShed  int64
		maxExtra int64 // requests sent beyond one per call
	}{
		{"new client", 0, 5, 5},
		{"after 20 answers served", 20, 15, 15},
	} {
		t.Run(tt.name, func(t *testing.T) { testStandardClientBacksOff(t, tt.warm, tt.maxShed, tt.maxExtra) })
	}
}

func testStandardClientBacksOff(t *testing.T, warm int, maxShed, maxExtra int64) {
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

	tr, err := resiliencehttp.Standard(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	for range warm {
		resp, err := client.Get(srv.URL + "/warm")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	sent.Store(0)

	// The server is full: two slow requests hold both slots.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { get(t, srv.URL+"/slow", "") })
		<-b.entered
	}

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
	// and 80 requests. With it, the calls after the gate closed wait.
	if n := shedCount.Load(); n > maxShed {
		t.Errorf("%d requests shed, want at most %d: the client did not back off", n, maxShed)
	}
	if n := sent.Load(); n > calls+maxExtra {
		t.Errorf("%d requests sent for %d calls, want at most %d", n, calls, calls+maxExtra)
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
