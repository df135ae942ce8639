package resiliencehttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// BenchmarkTransport measures what the transport adds to a GET on loopback:
// the bare transport is the peer, run side by side.
func BenchmarkTransport(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer s.Close()
	for _, bc := range []struct {
		name string
		rt   func(base http.RoundTripper) http.RoundTripper
	}{
		{"bare", func(base http.RoundTripper) http.RoundTripper { return base }},
		{"no-policy", func(base http.RoundTripper) http.RoundTripper { return resiliencehttp.NewTransport(base) }},
		{"retry", func(base http.RoundTripper) http.RoundTripper {
			return resiliencehttp.NewTransport(base, retry.New())
		}},
		{"timeout+retry+timeout", func(base http.RoundTripper) http.RoundTripper {
			return resiliencehttp.NewTransport(base, timeout.New(30*time.Second), retry.New(), timeout.New(10*time.Second))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := newTransport()
			defer base.CloseIdleConnections()
			client := &http.Client{Transport: bc.rt(base)}
			req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
