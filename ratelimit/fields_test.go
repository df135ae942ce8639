package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/ratelimit"
)

// fieldLines returns the field lines of the RateLimit-Policy and RateLimit
// fields of h's response to a GET of path, byte for byte.
func fieldLines(t *testing.T, h http.Handler, path string, hdr ...string) (status int, policy, state []string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Values(ratelimit.PolicyHeader), rec.Header().Values(ratelimit.StateHeader)
}

// TestPartitionKey: a quota kept per key (a tenant, a client address)
// names the partition of each item with pk, a digest of the key, so that a
// client can tell one tenant's spent quota from the whole host's: the
// first 12 bytes of the key's SHA-256, as a Byte Sequence.
func TestPartitionKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tenant := func(r *http.Request) string { return r.Header.Get("Tenant") }
		h := ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 2, Window: time.Minute}), tenant)(ok)
		const acme = "pk=:giszrYfBSKCiClun:" // SHA-256("acme")[:12]
		for i, want := range []struct {
			status        int
			policy, state string
		}{
			{200, `"tenant";q=2;w=60;` + acme, `"tenant";r=1;t=30;` + acme},
			// The allowed request that takes the last token: r=0 for
			// acme's partition only.
			{200, `"tenant";q=2;w=60;` + acme, `"tenant";r=0;t=30;` + acme},
			{429, `"tenant";q=2;w=60;` + acme, `"tenant";r=0;t=30;` + acme},
		} {
			status, policy, state := fieldLines(t, h, "/", "Tenant", "acme")
			if status != want.status || !slices.Equal(policy, []string{want.policy}) || !slices.Equal(state, []string{want.state}) {
				t.Fatalf("request %d: %d\nRateLimit-Policy: %q\nRateLimit: %q\nwant %d\nRateLimit-Policy: %q\nRateLimit: %q",
					i+1, status, policy, state, want.status, want.policy, want.state)
			}
		}
		status, policy, state := fieldLines(t, h, "/", "Tenant", "other")
		const other = "pk=:2SmKENGwc1g33EvY:" // SHA-256("other")[:12]
		if status != 200 || !slices.Equal(policy, []string{`"tenant";q=2;w=60;` + other}) ||
			!slices.Equal(state, []string{`"tenant";r=1;t=30;` + other}) {
			t.Fatalf("another tenant: %d, %q, %q", status, policy, state)
		}

		// The default key, the client's address, is a partition too.
		h = ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "ip", Limit: 5, Window: 5 * time.Second}), nil)(ok)
		_, policy, state = fieldLines(t, h, "/") // httptest's client is 192.0.2.1
		const ip = "pk=:N/z/JL9iA1srCAIK:"       // SHA-256("192.0.2.1")[:12]
		if !slices.Equal(policy, []string{`"ip";q=5;w=5;` + ip}) || !slices.Equal(state, []string{`"ip";r=4;t=1;` + ip}) {
			t.Fatalf("per address: %q, %q", policy, state)
		}
	})
}

// TestStackedMiddleware: two Middleware layers each add their items to the
// RateLimit fields; neither replaces the other's.
func TestStackedMiddleware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := func(r *http.Request) string { return r.URL.Path }
		outer := ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "outer", Limit: 10, Window: time.Minute}), path)
		inner := ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "inner", Limit: 1, Window: 10 * time.Second}), path)
		h := outer(inner(ok))
		for i, want := range []struct {
			status int
			state  fields
		}{
			{200, fields{"outer": {"r": 9, "t": 6}, "inner": {"r": 0, "t": 10}}},
			{429, fields{"outer": {"r": 8, "t": 12}, "inner": {"r": 0, "t": 10}}},
		} {
			r := get(t, h, "/")
			wantPolicy := fields{"outer": {"q": 10, "w": 60}, "inner": {"q": 1, "w": 10}}
			if r.status != want.status || !equalFields(r.policy, wantPolicy) || !equalFields(r.state, want.state) {
				t.Fatalf("request %d: %d, policy %v, state %v; want %d, %v, %v", i+1, r.status, r.policy, r.state, want.status, wantPolicy, want.state)
			}
		}
	})
}

// TestPolicyWindowInSeconds: the policy's w is in whole seconds; a window
// that is not a whole number of seconds is advertised over the next whole
// number, with the quota scaled down to it, so that the rate a client reads
// (q / w) is never above the real one and never far below it.
func TestPolicyWindowInSeconds(t *testing.T) {
	for _, tt := range []struct {
		limit  int64
		window time.Duration
		want   string
	}{
		{100, time.Minute, `"q";q=100;w=60`},
		{10, 100 * time.Millisecond, `"q";q=100;w=1`}, // 100/s; not 10/s
		{1, time.Millisecond, `"q";q=1000;w=1`},
		{3, 1500 * time.Millisecond, `"q";q=4;w=2`}, // 2/s
		{7, 2500 * time.Millisecond, `"q";q=8;w=3`}, // 2.8/s, read as 2.67/s
		{1, 1500 * time.Millisecond, `"q";q=1;w=2`}, // 0.67/s, read as 0.5/s
		{5, time.Second + time.Nanosecond, `"q";q=9;w=2`},
	} {
		d := ratelimit.Decision{Allowed: true, Remaining: 1, Quota: ratelimit.Quota{Name: "q", Limit: tt.limit, Window: tt.window}}
		_, policy, _ := fieldLines(t, ratelimit.Middleware(fixed{d: d}, ratelimit.Global)(ok), "/")
		if !slices.Equal(policy, []string{tt.want}) {
			t.Errorf("%d per %v: RateLimit-Policy %q, want %q", tt.limit, tt.window, policy, tt.want)
		}
	}
}

// TestGlobalSendsNoPartitionKey: a quota every request shares (Global)
// sends its items without pk; a per-key quota beside it keeps its own.
func TestGlobalSendsNoPartitionKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server := ratelimit.NewLocal(ratelimit.Quota{Name: "server", Limit: 1, Window: time.Minute})
		tenant := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 5, Window: time.Minute})
		h := ratelimit.Middleware(server, ratelimit.Global,
			ratelimit.WithLimit(tenant, func(r *http.Request) string { return r.Header.Get("Tenant") }))(ok)
		const acme = "pk=:giszrYfBSKCiClun:"
		status, policy, state := fieldLines(t, h, "/", "Tenant", "acme")
		wantPolicy := []string{`"server";q=1;w=60, "tenant";q=5;w=60;` + acme}
		wantState := []string{`"server";r=0;t=60, "tenant";r=4;t=12;` + acme}
		if status != 200 || !slices.Equal(policy, wantPolicy) || !slices.Equal(state, wantState) {
			t.Fatalf("%d\nRateLimit-Policy: %q\nRateLimit: %q\nwant 200\nRateLimit-Policy: %q\nRateLimit: %q", status, policy, state, wantPolicy, wantState)
		}
		// A key function of one's own that returns a constant is a quota
		// per key all the same: only Global itself means the whole server.
		constant := func(*http.Request) string { return "" }
		h = ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "c", Limit: 1, Window: time.Minute}), constant)(ok)
		_, policy, _ = fieldLines(t, h, "/")
		if want := []string{`"c";q=1;w=60;pk=:47DEQpj8HBSa+/TI:`}; !slices.Equal(policy, want) {
			t.Fatalf("constant key: %q, want %q", policy, want)
		}
	})
}
