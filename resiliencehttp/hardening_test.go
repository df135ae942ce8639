package resiliencehttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/timeout"
)

// TestStalledDiscardDoesNotHoldRetry: a 503 whose body stalls after a few
// bytes is drained for at most MaxDrainTime; the retry goes on and the
// caller gets the next attempt's answer, well within the total timeout.
func TestStalledDiscardDoesNotHoldRetry(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var hits atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
			w.(http.Flusher).Flush()
			select { // the rest of the body never comes
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	defer s.Close()
	base := newTransport()
	defer base.CloseIdleConnections()
	rt := resiliencehttp.NewTransport(base, timeout.New(20*time.Second), fastRetry())
	began := time.Now()
	resp, err := rt.RoundTrip(mustGet(t, s.URL))
	if err != nil {
		t.Fatalf("got %v, want the retry's 200 (the stalled drain held the retry until the total timeout)", err)
	}
	if got := readAll(t, resp); resp.StatusCode != http.StatusOK || got != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, got)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
	t.Logf("retried after a stalled drain in %v", time.Since(began))
}
