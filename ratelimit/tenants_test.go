package ratelimit_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

// TestOneTenantsQuotaDoesNotHoldAnother composes the library's client
// (resiliencehttp.Standard, pushback gate on) with its server middleware
// keyed per tenant: the allowed request that takes tenant A's last unit
// answers 200 with r=0, and tenant B, whose quota is whole, must still be
// sent and admitted. Before the fields carried pk (and before the client
// read it), A's r=0 closed the host's gate and B was turned away unsent.
func TestOneTenantsQuotaDoesNotHoldAnother(t *testing.T) {
	var served = map[string]int{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served[r.Header.Get("X-Tenant")]++ // one request at a time below
		io.WriteString(w, "ok")
	})
	lim := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 2, Window: time.Hour})
	srv := httptest.NewServer(ratelimit.Middleware(lim, func(r *http.Request) string { return r.Header.Get("X-Tenant") })(h))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr, err := resiliencehttp.Standard(base, standard.WithoutBreaker())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	get := func(tenant string) (int, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get(ratelimit.StateHeader), nil
	}
	for i := range 2 {
		code, state, err := get("A")
		if err != nil || code != 200 {
			t.Fatalf("tenant A, request %d: %d, %v; want 200", i+1, code, err)
		}
		if i == 1 && (!strings.Contains(state, "r=0") || !strings.Contains(state, "pk=:")) {
			t.Fatalf("tenant A's last unit: %s %q, want r=0 with a partition key", ratelimit.StateHeader, state)
		}
	}
	code, _, err := get("B")
	if err != nil || code != 200 {
		t.Fatalf("tenant B after A's quota ran out: %d, %v; want 200 (B's quota is whole)", code, err)
	}
	if served["B"] != 1 {
		t.Fatalf("tenant B: the handler ran %d times, want 1", served["B"])
	}
}

// TestOnePartitionsClientIsPaced: a client whose every request is in one
// partition (a quota per client, whose fields carry pk) and goes on after
// its quota ran out. Its 429s are evidence like any other: once they are
// half of the host's recent answers, the client's pushback gate holds its
// next calls instead of sending each to be turned away (the README's
// trade-off: such 429s from a tenant that makes most of a client's calls
// hold the client's other tenants too).
func TestOnePartitionsClientIsPaced(t *testing.T) {
	var turned int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	lim := ratelimit.NewLocal(ratelimit.Quota{Name: "client", Limit: 2, Window: time.Hour})
	rl := ratelimit.Middleware(lim, func(r *http.Request) string { return "one client" })(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		rl.ServeHTTP(rec, r)
		if rec.Code == http.StatusTooManyRequests {
			turned++ // one request at a time below
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr, err := resiliencehttp.Standard(base, standard.WithoutBreaker())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	for range 30 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
	}
	if turned > 4 {
		t.Fatalf("%d requests sent and turned away with 429 for 28 calls past the quota, want at most 4: the client was not paced", turned)
	}
}
