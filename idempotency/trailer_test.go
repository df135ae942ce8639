package idempotency_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resilience-go/resilience/idempotency"
)

// TestReplayKeepsTrailers: a replay sends the trailers the first response
// sent, declared ones (Trailer header) and undeclared ones
// (http.TrailerPrefix), over a real connection.
func TestReplayKeepsTrailers(t *testing.T) {
	t.Run("HTTP/1.1", func(t *testing.T) { testReplayKeepsTrailers(t, false) })
	t.Run("HTTP/2", func(t *testing.T) { testReplayKeepsTrailers(t, true) })
}

func testReplayKeepsTrailers(t *testing.T, h2 bool) {
	var runs atomic.Int64
	srv := httptest.NewUnstartedServer(idempotency.Middleware(idempotency.NewMemoryStore())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "c1")
		w.Header().Set(http.TrailerPrefix+"X-Late", "l1")
	})))
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	defer srv.Close()
	c := srv.Client()
	defer c.CloseIdleConnections()
	post := func() (*http.Response, string) {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", key1)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // trailers arrive after the body
		return resp, string(b)
	}
	first, body1 := post()
	second, body2 := post()
	if h2 && second.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", second.Proto)
	}
	if runs.Load() != 1 || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("got %d runs, repeat %v; want a replay", runs.Load(), second.Header)
	}
	if body1 != "body" || body2 != "body" || second.StatusCode != http.StatusCreated {
		t.Errorf("bodies %q, %q, status %d", body1, body2, second.StatusCode)
	}
	for _, k := range []string{"X-Checksum", "X-Late"} {
		if f, s := first.Trailer.Get(k), second.Trailer.Get(k); f == "" || s != f {
			t.Errorf("trailer %s: first %q, replay %q; want the same", k, f, s)
		}
	}
	if got := second.Header.Values("X-Checksum"); len(got) != 0 {
		t.Errorf("replay sent the trailer X-Checksum as a header: %q", got)
	}
}

// TestTrailersCountAgainstTheBound: the record's bound (WithMaxResponse)
// covers trailers too: a response whose trailers make its record too large
// is sent whole but not recorded.
func TestTrailersCountAgainstTheBound(t *testing.T) {
	var runs atomic.Int64
	h := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithMaxResponse(100))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Trailer", "X-Big")
		io.WriteString(w, "small body")
		w.Header().Set("X-Big", strings.Repeat("t", 200))
	}))
	for range 2 {
		r := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
		r.Header.Set("Idempotency-Key", key1)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Result().Trailer.Get("X-Big"); len(got) != 200 {
			t.Fatalf("trailer: got %d bytes, want the 200 sent", len(got))
		}
	}
	if runs.Load() != 2 {
		t.Errorf("runs: got %d, want 2 (the record is above the bound)", runs.Load())
	}
}
