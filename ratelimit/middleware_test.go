package ratelimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/ratelimit"
)

// fields is a RateLimit or RateLimit-Policy field parsed back with httpsfv:
// quota name → parameter → value.
type fields map[string]map[string]int64

func parseFields(t testing.TB, v ...string) fields {
	t.Helper()
	l, err := httpsfv.UnmarshalList(v)
	if err != nil {
		t.Fatalf("field %q does not parse: %v", v, err)
	}
	got := fields{}
	for _, m := range l {
		it, ok := m.(httpsfv.Item)
		if !ok {
			t.Fatalf("field %q: member %v is not an item", v, m)
		}
		name, ok := it.Value.(string)
		if !ok {
			t.Fatalf("field %q: item %v is not a string", v, it.Value)
		}
		ps := map[string]int64{}
		for _, k := range it.Params.Names() {
			p, _ := it.Params.Get(k)
			if k == "pk" {
				if b, ok := p.([]byte); !ok || len(b) == 0 {
					t.Fatalf("field %q: pk=%v is not a byte sequence", v, p)
				}
				continue
			}
			n, ok := p.(int64)
			if !ok || n < 0 {
				t.Fatalf("field %q: %s=%v is not a non-negative integer", v, k, p)
			}
			ps[k] = n
		}
		got[name] = ps
	}
	return got
}

func equalFields(a, b fields) bool { return maps.EqualFunc(a, b, maps.Equal) }

func (f fields) String() string { return fmt.Sprint(map[string]map[string]int64(f)) }

type response struct {
	status     int
	policy     fields
	state      fields
	retryAfter string
	body       string
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := response{status: rec.Code, retryAfter: rec.Header().Get("Retry-After"), body: rec.Body.String()}
	if v := rec.Header().Values(ratelimit.PolicyHeader); len(v) > 0 {
		r.policy = parseFields(t, v...)
	}
	if v := rec.Header().Values(ratelimit.StateHeader); len(v) > 0 {
		r.state = parseFields(t, v...)
	}
	return r
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

func TestMiddlewareLocal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := ratelimit.Quota{Name: "burst", Limit: 3, Window: time.Minute}
		h := ratelimit.Middleware(ratelimit.NewLocal(q), nil)(ok)
		wantPolicy := fields{"burst": {"q": 3, "w": 60}}
		// 3 at once, then one every 20s.
		for i, want := range []fields{
			{"burst": {"r": 2, "t": 20}},
			{"burst": {"r": 1, "t": 40}},
			{"burst": {"r": 0, "t": 20}}, // none left: t is when the next one is
		} {
			r := get(t, h, "/")
			if r.status != 200 || r.body != "ok" {
				t.Fatalf("request %d: status %d, want 200", i+1, r.status)
			}
			if !maps.EqualFunc(r.policy, wantPolicy, maps.Equal) || !maps.EqualFunc(r.state, want, maps.Equal) {
				t.Fatalf("request %d: policy %v, state %v; want %v, %v", i+1, r.policy, r.state, wantPolicy, want)
			}
		}
		time.Sleep(5 * time.Second)
		r := get(t, h, "/")
		if r.status != http.StatusTooManyRequests || r.retryAfter != "15" {
			t.Fatalf("got %d, Retry-After %q; want 429, 15", r.status, r.retryAfter)
		}
		if want := (fields{"burst": {"r": 0, "t": 15}}); !maps.EqualFunc(r.state, want, maps.Equal) {
			t.Fatalf("429 state %v, want %v", r.state, want)
		}
		var p struct {
			Status int    `json:"status"`
			Title  string `json:"title"`
		}
		if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Status != 429 || p.Title != "Too Many Requests" {
			t.Fatalf("429 body %q (%v), want a problem+json document", r.body, err)
		}
		time.Sleep(15 * time.Second)
		if r := get(t, h, "/"); r.status != 200 {
			t.Fatalf("after Retry-After: got %d, want 200", r.status)
		}
	})
}

func TestMiddlewareStrictestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tenant := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 10, Window: time.Minute})
		endpoint := ratelimit.NewLocal(ratelimit.Quota{Name: "endpoint", Limit: 2, Window: 10 * time.Second})
		byTenant := func(r *http.Request) string { return r.Header.Get("Tenant") }
		byPath := func(r *http.Request) string { return r.URL.Path }
		h := ratelimit.Middleware(tenant, byTenant, ratelimit.WithLimit(endpoint, byPath))(ok)
		get(t, h, "/a", "Tenant", "t1")
		get(t, h, "/a", "Tenant", "t1")
		r := get(t, h, "/a", "Tenant", "t1")
		if r.status != 429 || r.retryAfter != "5" {
			t.Fatalf("third call to /a: %d, Retry-After %q; want 429, 5 (the endpoint quota)", r.status, r.retryAfter)
		}
		wantPolicy := fields{"tenant": {"q": 10, "w": 60}, "endpoint": {"q": 2, "w": 10}}
		wantState := fields{"tenant": {"r": 7, "t": 18}, "endpoint": {"r": 0, "t": 5}}
		if !maps.EqualFunc(r.policy, wantPolicy, maps.Equal) || !maps.EqualFunc(r.state, wantState, maps.Equal) {
			t.Fatalf("policy %v, state %v; want %v, %v", r.policy, r.state, wantPolicy, wantState)
		}
		if r := get(t, h, "/b", "Tenant", "t1"); r.status != 200 {
			t.Fatalf("/b: got %d, want 200 (its own endpoint quota)", r.status)
		}
		if r := get(t, h, "/a", "Tenant", "t2"); r.status != 429 {
			t.Fatalf("/a for another tenant: got %d, want 429 (the endpoint is out)", r.status)
		}
	})
}

func TestLocalBoundsKeys(t *testing.T) {
	l := ratelimit.NewLocal(ratelimit.Quota{Name: "k", Limit: 1, Window: time.Hour}, ratelimit.WithMaxKeys(100))
	big := strings.Repeat("x", 64<<10)
	for _, k := range []string{big + "1", big + "2"} {
		if d, _ := l.Admit(t.Context(), k); !d.Allowed {
			t.Fatalf("first request of a long key refused")
		}
	}
	if d, _ := l.Admit(t.Context(), big+"1"); d.Allowed {
		t.Fatalf("second request of a long key admitted: long keys must keep their own bucket")
	}
	if got := len(ratelimit.BoundKey(big)); got > ratelimit.MaxKeyLen {
		t.Fatalf("BoundKey kept %d bytes, want at most %d", got, ratelimit.MaxKeyLen)
	}
	if got := ratelimit.BoundKey("short"); got != "short" {
		t.Fatalf("BoundKey(short) = %q", got)
	}
	for i := range 300 {
		l.Admit(t.Context(), fmt.Sprint(big, i))
	}
	if n := l.Len(); n > 100 {
		t.Fatalf("Len = %d, want <= 100", n)
	}
}

// fixed is an Admitter whose every answer is given by the test.
type fixed struct {
	d   ratelimit.Decision
	err error
}

func (f fixed) Admit(context.Context, string) (ratelimit.Decision, error) { return f.d, f.err }

func TestMiddlewareUnavailableAndFailOpen(t *testing.T) {
	h := ratelimit.Middleware(fixed{err: ratelimit.ErrUnavailable}, nil)(ok)
	if r := get(t, h, "/"); r.status != 503 || r.retryAfter != "1" {
		t.Fatalf("got %d, Retry-After %q; want 503, 1", r.status, r.retryAfter)
	}
	// A decision without a quota (failing open) sends no fields.
	h = ratelimit.Middleware(fixed{d: ratelimit.Decision{Allowed: true}}, nil)(ok)
	if r := get(t, h, "/"); r.status != 200 || r.policy != nil || r.state != nil {
		t.Fatalf("got %d, %v, %v; want 200 without fields", r.status, r.policy, r.state)
	}
}

func TestMiddlewareTelemetry(t *testing.T) {
	h := telemetrytest.New(t)
	lim := ratelimit.NewLocal(ratelimit.Quota{Name: "q", Limit: 1, Window: time.Hour})
	mw := ratelimit.Middleware(lim, nil, ratelimit.WithName("api"),
		ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))
	srv := mw(ok)
	for range 2 {
		ctx, span := h.Span(context.Background())
		req := httptest.NewRequestWithContext(ctx, "POST", "/", nil)
		srv.ServeHTTP(httptest.NewRecorder(), req)
		span.End()
	}
	got := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	want := map[string]int64{
		"http.request.method=POST resilience.event=allowed resilience.name=api resilience.policy=ratelimit_server":  1,
		"http.request.method=POST resilience.event=rejected resilience.name=api resilience.policy=ratelimit_server": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", got, want)
	}
	evs := h.Events(t, "caller")
	if len(evs) != 2 || evs[0].Name != "resilience.ratelimit_server.allowed" || evs[1].Name != "resilience.ratelimit_server.rejected" {
		t.Fatalf("span events %v, want allowed then rejected", evs)
	}
	if !strings.Contains(evs[1].Attrs, "resilience.quota=q") || !strings.Contains(evs[1].Attrs, "resilience.retry_in=") {
		t.Errorf("rejected event attributes %q, want the quota and the retry time", evs[1].Attrs)
	}
}

func TestEnforce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := ratelimit.NewLocal(ratelimit.Quota{Name: "q", Limit: 1, Window: 10 * time.Second})
		p := ratelimit.Enforce(lim, nil)
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "10.0.0.1"})
		ran := 0
		op := func(context.Context) error { ran++; return nil }
		if err := p.Do(ctx, op); err != nil || ran != 1 {
			t.Fatalf("first call: %v, ran %d", err, ran)
		}
		err := p.Do(ctx, op)
		if d, ok := resilience.RetryAfter(err); !errors.Is(err, ratelimit.ErrLimited) || !ok || d != 10*time.Second {
			t.Fatalf("second call: %v (retry after %v), want ErrLimited with 10s", err, d)
		}
		err = ratelimit.Enforce(fixed{err: errors.New("store down")}, nil).Do(ctx, op)
		if !errors.Is(err, ratelimit.ErrUnavailable) || ran != 1 {
			t.Fatalf("undecided call: %v, ran %d; want ErrUnavailable without running", err, ran)
		}
	})
}

func TestInvalidQuotaPanics(t *testing.T) {
	for _, tt := range []struct {
		f    func()
		want string
	}{
		{func() { ratelimit.NewLocal(ratelimit.Quota{Limit: 1, Window: time.Second}) }, "ratelimit: NewLocal: quota name"},
		{func() { ratelimit.NewLocal(ratelimit.Quota{Name: "a", Window: time.Second}) }, "ratelimit: NewLocal: quota \"a\": limit"},
		{func() { ratelimit.NewLocal(ratelimit.Quota{Name: "a", Limit: 1}) }, "ratelimit: NewLocal: quota \"a\": window"},
		{func() { ratelimit.NewLocal(ratelimit.Quota{Name: "é", Limit: 1, Window: time.Second}) }, "ratelimit: NewLocal: quota name must be printable ASCII"},
		{func() { ratelimit.Middleware(nil, nil) }, "ratelimit: Middleware: admitter is nil"},
		{func() { ratelimit.New(1, 1, ratelimit.WithLimit(fixed{}, nil)) }, "ratelimit: New: WithLimit applies to Middleware only"},
	} {
		func() {
			defer func() {
				if s, _ := recover().(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("got panic %q, want %q", s, tt.want)
				}
			}()
			tt.f()
		}()
	}
}

// FuzzFields serializes arbitrary decisions into the RateLimit fields and
// parses them back with httpsfv: whatever the values, the fields are
// well-formed and say what the decision said.
func FuzzFields(f *testing.F) {
	f.Add("burst", int64(100), int64(60_000), int64(50), int64(30_000), int64(0))
	f.Add("a\"b\\c", int64(1), int64(1), int64(-5), int64(-1), int64(1<<62))
	f.Add("", int64(0), int64(0), int64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, name string, limit, windowMS, remaining, resetMS, retryMS int64) {
		q := ratelimit.Quota{Name: name, Limit: limit, Window: time.Duration(windowMS) * time.Millisecond}
		d := ratelimit.Decision{
			Allowed: true, Remaining: remaining, Quota: q,
			Reset:      time.Duration(resetMS) * time.Millisecond,
			RetryAfter: time.Duration(retryMS) * time.Millisecond,
		}
		rec := httptest.NewRecorder()
		ratelimit.Middleware(fixed{d: d}, nil)(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		pv, sv := rec.Header().Get(ratelimit.PolicyHeader), rec.Header().Get(ratelimit.StateHeader)
		if q.Validate() != nil {
			// An invalid quota cannot be serialized faithfully: it must
			// at least not produce a malformed field.
			for _, v := range []string{pv, sv} {
				if v != "" {
					if _, err := httpsfv.UnmarshalList([]string{v}); err != nil {
						t.Fatalf("malformed field %q: %v", v, err)
					}
				}
			}
			return
		}
		policy, state := parseFields(t, pv), parseFields(t, sv)
		p, s := policy[name], state[name]
		if len(policy) != 1 || len(state) != 1 || p == nil || s == nil {
			t.Fatalf("fields %q, %q: want one item named %q each", pv, sv, name)
		}
		// w is the window in whole seconds, rounded up; q the limit
		// scaled to it, rounded down: the rate q/w is at most the
		// quota's, by less than one request per w.
		wantW := max(int64((q.Window+time.Second-1)/time.Second), 1)
		scaled := new(big.Int).Mul(big.NewInt(limit), big.NewInt(wantW*int64(time.Second)))
		scaled.Quo(scaled, big.NewInt(int64(q.Window)))
		wantQ := min(scaled.Int64(), 999_999_999_999_999)
		if p["q"] != wantQ || p["w"] != wantW {
			t.Fatalf("policy %v, want q=%d w=%d", p, wantQ, wantW)
		}
		if q.Window%time.Second == 0 && p["q"] != limit {
			t.Fatalf("policy %v for a window of whole seconds, want q=%d", p, limit)
		}
		if want := max(remaining, 0); s["r"] != want {
			t.Fatalf("state r=%d, want %d", s["r"], want)
		}
		if next := d.RetryAfter; s["r"] == 0 && next > 0 && time.Duration(s["t"])*time.Second < next && s["t"] < 999_999_999_999_999 {
			t.Fatalf("state t=%d, before the next request (%v)", s["t"], next)
		}
		if rec.Code != 200 {
			t.Fatalf("status %d, want 200", rec.Code)
		}
	})
}

// BenchmarkMiddleware: one admitted request through Middleware with a
// quota per tenant, fields and all.
func BenchmarkMiddleware(b *testing.B) {
	lim := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 1 << 40, Window: time.Second})
	h := ratelimit.Middleware(lim, func(r *http.Request) string { return r.Header.Get("Tenant") })(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Tenant", "acme")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}
