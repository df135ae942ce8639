package storetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/resilience-go/resilience/idempotency"
)

// BenchMiddleware measures what idempotency.Middleware on store adds to a
// request: "baseline" is the handler alone, "no key" a request that passes
// through, "new key" a first request (reserve, run, record), "replay" a
// repeat answered from the record. The handler writes a small JSON body.
func BenchMiddleware(b *testing.B, store idempotency.Store) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"ch_123","amount":100,"status":"succeeded"}`)
	})
	mw := idempotency.Middleware(store)(h)
	const body = `{"amount":100,"currency":"eur"}`
	run := func(b *testing.B, handler http.Handler, key func(i int) string) {
		b.ReportAllocs()
		r := httptest.NewRequest("POST", "/charges", nil)
		for i := 0; b.Loop(); i++ {
			r.Body = io.NopCloser(strings.NewReader(body))
			if k := key(i); k != "" {
				r.Header.Set("Idempotency-Key", k)
			}
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("baseline", func(b *testing.B) { run(b, h, func(int) string { return "" }) })
	b.Run("no key", func(b *testing.B) { run(b, mw, func(int) string { return "" }) })
	runID := 0
	b.Run("new key", func(b *testing.B) {
		runID++ // b.Loop runs the body more than once: keys must stay new
		prefix := `"bench-` + strconv.Itoa(runID) + "-"
		run(b, mw, func(i int) string { return prefix + strconv.Itoa(i) + `"` })
	})
	b.Run("replay", func(b *testing.B) { run(b, mw, func(int) string { return `"replayed-key"` }) })
}
