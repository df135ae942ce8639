package idempotency_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/idempotency"
)

const key1 = `"8e03978e-40d5-43e8-bc93-6894a57f9324"`

// counter is a handler whose side effect is counting its runs; it answers
// 201 with headers of its own and a body naming the run.
type counter struct {
	runs atomic.Int64
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := c.runs.Add(1)
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Location", "/orders/"+string(rune('0'+n)))
	w.Header().Add("Set-Cookie", "a=1")
	w.Header().Add("Set-Cookie", "b=2")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"run":`)
	io.WriteString(w, string(rune('0'+n)))
	io.WriteString(w, `,"echo":`+string(body)+`}`)
}

type response struct {
	status int
	header http.Header
	body   string
}

func serve(h http.Handler, method, key, auth, body string) response {
	r := httptest.NewRequest(method, "/orders?x=1", strings.NewReader(body))
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return response{w.Code, w.Header(), w.Body.String()}
}

func TestReplayIsByteIdentical(t *testing.T) {
	var c counter
	h := idempotency.Middleware(idempotency.NewMemoryStore())(&c)
	first := serve(h, "POST", key1, "", `{"amount":1}`)
	second := serve(h, "POST", key1, "", `{"amount":1}`)
	if got := c.runs.Load(); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	if first.status != http.StatusCreated || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: got %d %v, want 201 not replayed", first.status, first.header)
	}
	if second.status != first.status || second.body != first.body {
		t.Errorf("replay: got %d %q, want %d %q", second.status, second.body, first.status, first.body)
	}
	if got := second.header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed: got %q, want true", got)
	}
	second.header.Del("Idempotent-Replayed")
	for k, vs := range first.header {
		if !equal(second.header[k], vs) {
			t.Errorf("header %s: got %q, want %q", k, second.header[k], vs)
		}
	}
	if len(second.header) != len(first.header) {
		t.Errorf("headers: got %v, want %v", second.header, first.header)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// problemOf checks that resp is an RFC 9457 problem with status.
func problemOf(t *testing.T, resp response, status int) {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status: got %d (%s), want %d", resp.status, resp.body, status)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type: got %q, want application/problem+json", ct)
	}
	var p struct {
		Type, Title, Detail string
		Status              int
	}
	if err := json.Unmarshal([]byte(resp.body), &p); err != nil {
		t.Fatalf("problem body %q: %v", resp.body, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Detail == "" || p.Type == "" {
		t.Errorf("problem: got %+v, want status %d with a title and detail", p, status)
	}
}

// problemDetail returns the detail of the problem in resp's body.
func problemDetail(t *testing.T, resp response) string {
	t.Helper()
	var p struct{ Detail string }
	if err := json.Unmarshal([]byte(resp.body), &p); err != nil {
		t.Fatalf("problem body %q: %v", resp.body, err)
	}
	return p.Detail
}

func TestMismatch(t *testing.T) {
	var c counter
	h := idempotency.Middleware(idempotency.NewMemoryStore())(&c)
	serve(h, "POST", key1, "", `{"amount":1}`)
	problemOf(t, serve(h, "POST", key1, "", `{"amount":2}`), http.StatusUnprocessableEntity)
	problemOf(t, serve(h, "PATCH", key1, "", `{"amount":1}`), http.StatusUnprocessableEntity)
	if got := c.runs.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
}

func TestBadKeys(t *testing.T) {
	long := `"` + strings.Repeat("k", 256) + `"`
	tests := []struct {
		name, method, key string
		opts              []idempotency.Option
		want              int // 0: the handler runs
	}{
		{"missing, not required", "POST", "", nil, 0},
		{"missing, required", "POST", "", []idempotency.Option{idempotency.WithRequired("POST")}, 400},
		{"missing, required for another method", "PUT", "", []idempotency.Option{idempotency.WithRequired("POST")}, 0},
		{"token", "POST", "abc", nil, 400},
		{"number", "POST", "123", nil, 400},
		{"unterminated", "POST", `"abc`, nil, 400},
		{"empty string", "POST", `""`, nil, 400},
		{"list", "POST", `"a", "b"`, nil, 400},
		{"too long", "POST", long, nil, 400},
		{"longest", "POST", `"` + strings.Repeat("k", 255) + `"`, nil, 0},
		{"shorter bound", "POST", `"abcdef"`, []idempotency.Option{idempotency.WithMaxKeyLength(5)}, 400},
		{"bare token allowed", "POST", "abc", []idempotency.Option{idempotency.WithBareKeys()}, 0},
		{"bare uuid allowed", "POST", "8e03978e-40d5-43e8-bc93-6894a57f9324", []idempotency.Option{idempotency.WithBareKeys()}, 0},
		{"bare with space", "POST", "a b", []idempotency.Option{idempotency.WithBareKeys()}, 400},
		{"quoted with bare", "POST", key1, []idempotency.Option{idempotency.WithBareKeys()}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c counter
			h := idempotency.Middleware(idempotency.NewMemoryStore(), tt.opts...)(&c)
			resp := serve(h, tt.method, tt.key, "", "{}")
			if tt.want == 0 {
				if resp.status != http.StatusCreated || c.runs.Load() != 1 {
					t.Fatalf("got %d %s after %d runs, want the handler's 201", resp.status, resp.body, c.runs.Load())
				}
				return
			}
			problemOf(t, resp, tt.want)
			if c.runs.Load() != 0 {
				t.Errorf("handler ran")
			}
		})
	}
	t.Run("two header lines", func(t *testing.T) {
		var c counter
		h := idempotency.Middleware(idempotency.NewMemoryStore())(&c)
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Add("Idempotency-Key", `"a"`)
		r.Header.Add("Idempotency-Key", `"b"`)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		problemOf(t, response{w.Code, w.Header(), w.Body.String()}, 400)
	})
}

func TestPrincipalScoping(t *testing.T) {
	var c counter
	h := idempotency.Middleware(idempotency.NewMemoryStore())(&c)
	alice := serve(h, "POST", key1, "Bearer alice", "{}")
	bob := serve(h, "POST", key1, "Bearer bob", "{}")
	if c.runs.Load() != 2 || alice.body == bob.body {
		t.Fatalf("got %d runs (%q, %q), want each principal's own run", c.runs.Load(), alice.body, bob.body)
	}
	if again := serve(h, "POST", key1, "Bearer alice", "{}"); again.body != alice.body || c.runs.Load() != 2 {
		t.Errorf("alice's repeat: got %q, want her own %q", again.body, alice.body)
	}

	var c2 counter
	tenant := idempotency.Middleware(idempotency.NewMemoryStore(),
		idempotency.WithPrincipal(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))(&c2)
	for _, tn := range []string{"a", "b", "a"} {
		r := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
		r.Header.Set("Idempotency-Key", key1)
		r.Header.Set("X-Tenant", tn)
		tenant.ServeHTTP(httptest.NewRecorder(), r)
	}
	if got := c2.runs.Load(); got != 2 {
		t.Errorf("WithPrincipal: %d runs, want 2", got)
	}

	type userKey struct{}
	var c3 counter
	byUser := idempotency.Middleware(idempotency.NewMemoryStore(),
		idempotency.WithContextPrincipal(func(ctx context.Context) string { s, _ := ctx.Value(userKey{}).(string); return s }))(&c3)
	for _, u := range []string{"ann", "ben", "ben"} {
		r := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
		r.Header.Set("Idempotency-Key", key1)
		byUser.ServeHTTP(httptest.NewRecorder(), r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}
	if got := c3.runs.Load(); got != 2 {
		t.Errorf("WithContextPrincipal: %d runs, want 2", got)
	}
}

func TestServerErrorReleases(t *testing.T) {
	var runs atomic.Int64
	h := idempotency.Middleware(idempotency.NewMemoryStore())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	if got := serve(h, "POST", key1, "", "{}"); got.status != 500 {
		t.Fatalf("first: got %d, want 500", got.status)
	}
	if got := serve(h, "POST", key1, "", "{}"); got.status != 200 || got.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry: got %d %v, want a new run's 200", got.status, got.header)
	}
	if got := serve(h, "POST", key1, "", "{}"); got.status != 200 || got.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat: got %d %v, want the replayed 200", got.status, got.header)
	}
	if runs.Load() != 2 {
		t.Errorf("runs: got %d, want 2", runs.Load())
	}
}

func TestPanicReleasesAndPanicsAgain(t *testing.T) {
	var runs atomic.Int64
	h := idempotency.Middleware(idempotency.NewMemoryStore())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	}))
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", r)
			}
		}()
		serve(h, "POST", key1, "", "{}")
	}()
	if got := serve(h, "POST", key1, "", "{}"); got.status != 200 || runs.Load() != 2 {
		t.Fatalf("after a panic: got %d after %d runs, want a second run", got.status, runs.Load())
	}
}

func TestTooLargeResponseIsNotRecorded(t *testing.T) {
	var runs atomic.Int64
	h := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithMaxResponse(10))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		io.WriteString(w, "0123456789")
		io.WriteString(w, "abc")
	}))
	for i := range 2 {
		if got := serve(h, "POST", key1, "", "{}"); got.body != "0123456789abc" {
			t.Fatalf("request %d: got %q, want the whole body", i, got.body)
		}
	}
	if runs.Load() != 2 {
		t.Errorf("runs: got %d, want 2 (the large response is not recorded)", runs.Load())
	}
}

func TestRequestBody(t *testing.T) {
	var c counter
	h := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithMaxRequestBody(8))(&c)
	problemOf(t, serve(h, "POST", key1, "", "123456789"), http.StatusRequestEntityTooLarge)
	if got := serve(h, "POST", key1, "", "12345678"); !strings.Contains(got.body, `"echo":12345678`) {
		t.Errorf("the handler got %q, want the whole body echoed", got.body)
	}
	// Without a key the body is not read by the middleware.
	if got := serve(h, "POST", "", "", "1234567890"); !strings.Contains(got.body, `"echo":1234567890`) {
		t.Errorf("no key: the handler got %q", got.body)
	}
}

func TestInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs atomic.Int64
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			<-release
			io.WriteString(w, "done")
		})
		h := idempotency.Middleware(idempotency.NewMemoryStore())(slow)

		var wg sync.WaitGroup
		var first response
		wg.Go(func() { first = serve(h, "POST", key1, "", "{}") })
		synctest.Wait()
		conflict := serve(h, "POST", key1, "", "{}")
		problemOf(t, conflict, http.StatusConflict)
		if conflict.header.Get("Retry-After") == "" {
			t.Error("409 without Retry-After")
		}
		close(release)
		wg.Wait()
		if first.body != "done" || runs.Load() != 1 {
			t.Errorf("first: got %q after %d runs", first.body, runs.Load())
		}
	})
}

func TestWaitForFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs atomic.Int64
		h := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithWait(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			<-release
			io.WriteString(w, "done")
		}))
		var wg sync.WaitGroup
		var second response
		wg.Go(func() { serve(h, "POST", key1, "", "{}") })
		synctest.Wait()
		wg.Go(func() { second = serve(h, "POST", key1, "", "{}") })
		time.Sleep(time.Second) // the second one polls meanwhile
		close(release)
		wg.Wait()
		if runs.Load() != 1 || second.body != "done" || second.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("got %d runs, second %d %q %v; want one run, replayed to the second", runs.Load(), second.status, second.body, second.header)
		}

		// A wait that runs out answers 409.
		short := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithWait(time.Second))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		ctx, cancel := context.WithCancel(context.Background())
		wg.Go(func() {
			r := httptest.NewRequestWithContext(ctx, "POST", "/orders?x=1", nil)
			r.Header.Set("Idempotency-Key", key1)
			short.ServeHTTP(httptest.NewRecorder(), r)
		})
		synctest.Wait()
		start := time.Now()
		problemOf(t, serve(short, "POST", key1, "", ""), http.StatusConflict)
		if d := time.Since(start); d != time.Second {
			t.Errorf("waited %v, want 1s", d)
		}
		cancel()
		wg.Wait()
	})
}

func TestStoreFullFailsClosedOrOpen(t *testing.T) {
	var c counter
	closed := idempotency.Middleware(idempotency.NewMemoryStore(idempotency.WithMaxEntries(1)))(&c)
	serve(closed, "POST", `"a"`, "", "{}")
	full := serve(closed, "POST", `"b"`, "", "{}")
	problemOf(t, full, http.StatusServiceUnavailable)
	// The problem says what failed, so that a client can tell its caller.
	if d := problemDetail(t, full); !strings.Contains(d, "not run") || !strings.Contains(d, "idempotency store is full") {
		t.Errorf("detail %q, want it to say the request was not run because the store is full", d)
	}

	open := idempotency.Middleware(idempotency.NewMemoryStore(idempotency.WithMaxEntries(1)), idempotency.WithFailOpen())(&c)
	serve(open, "POST", `"a"`, "", "{}")
	if got := serve(open, "POST", `"b"`, "", "{}"); got.status != http.StatusCreated {
		t.Errorf("fail open: got %d, want the handler's 201", got.status)
	}
	if got := c.runs.Load(); got != 3 {
		t.Errorf("runs: got %d, want 3", got)
	}
}

func TestMiddlewarePanicsOnMisuse(t *testing.T) {
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"nil store", func() { idempotency.Middleware(nil) }, "idempotency: Middleware: nil Store"},
		{"ttl", func() { idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithTTL(0)) }, "WithTTL"},
		{"lease", func() { idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithLease(-1)) }, "WithLease"},
		{"key length", func() { idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithMaxKeyLength(0)) }, "WithMaxKeyLength"},
		{"guard with http option", func() { idempotency.NewGuard(idempotency.NewMemoryStore(), idempotency.WithRequired("POST")) }, "WithRequired"},
		{"keyer with server option", func() { idempotency.NewKeyer([]string{"*"}, idempotency.WithTTL(time.Hour)) }, "WithTTL"},
		{"keyer without scope", func() { idempotency.NewKeyer(nil) }, "empty scope"},
		{"keyer bad method", func() { idempotency.NewKeyer([]string{"/pkg.S/"}) }, "not a gRPC full method"},
		{"memory entries", func() { idempotency.NewMemoryStore(idempotency.WithMaxEntries(0)) }, "WithMaxEntries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				s, _ := r.(string)
				if !strings.HasPrefix(s, "idempotency: ") || !strings.Contains(s, tt.want) {
					t.Errorf("panic: got %v, want one naming %q", r, tt.want)
				}
			}()
			tt.f()
		})
	}
}

// httpHandler answers the body f returns for its nth run; runs is only
// touched by one request at a time in the tests that use it.
func httpHandler(f func(n int) string, runs *int) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*runs++
		n := *runs
		mu.Unlock()
		io.WriteString(w, f(n))
	})
}

// releaseSignal is a store that says when a key was released.
type releaseSignal struct {
	idempotency.Store
	released chan struct{}
}

func (s *releaseSignal) Release(ctx context.Context, key string, token uint64) error {
	err := s.Store.Release(ctx, key, token)
	select {
	case s.released <- struct{}{}:
	default:
	}
	return err
}

func TestHijackReleases(t *testing.T) {
	var runs atomic.Int64
	store := &releaseSignal{Store: idempotency.NewMemoryStore(), released: make(chan struct{}, 1)}
	srv := httptest.NewServer(idempotency.Middleware(store)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			buf.Flush()
			conn.Close()
			return
		}
		io.WriteString(w, "served")
	})))
	defer srv.Close()
	c := srv.Client()
	defer c.CloseIdleConnections()
	var bodies []string
	for range 2 {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", key1)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, string(b))
		if len(bodies) == 1 {
			// The client has the hijacked answer as soon as it is written;
			// the key is released when the handler has returned.
			<-store.released
		}
	}
	if runs.Load() != 2 || bodies[0] != "hijacked" || bodies[1] != "served" {
		t.Errorf("got %q after %d runs, want the hijacked answer, then a new run", bodies, runs.Load())
	}
}
