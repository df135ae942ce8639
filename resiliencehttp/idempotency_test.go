package resiliencehttp_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// keyLog is a server that fails the first attempt of each logical call
// (503) and records the Idempotency-Key and body of every attempt.
type keyLog struct {
	mu       sync.Mutex
	keys     []string
	bodies   []string
	attempts atomic.Int64
}

func (l *keyLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.keys = append(l.keys, r.Header.Get("Idempotency-Key"))
	l.bodies = append(l.bodies, string(b))
	l.mu.Unlock()
	if l.attempts.Add(1)%2 == 1 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok")
}

func (l *keyLog) reset() ([]string, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, b := l.keys, l.bodies
	l.keys, l.bodies = nil, nil
	l.attempts.Store(0)
	return k, b
}

func stdClient(t *testing.T, opts ...standard.Option) *http.Client {
	t.Helper()
	opts = append([]standard.Option{standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond))}, opts...)
	tr, err := resiliencehttp.Standard(http.DefaultTransport.(*http.Transport).Clone(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Base.(*http.Transport).CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestStandardStampsKeys(t *testing.T) {
	var l keyLog
	srv := httptest.NewServer(&l)
	t.Cleanup(srv.Close)
	host := mustURL(t, srv.URL).Hostname()

	send := func(c *http.Client, method, key string, body io.Reader) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, body)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if req.Header.Get("Idempotency-Key") != key {
			t.Errorf("the caller's request was modified: %q", req.Header.Get("Idempotency-Key"))
		}
		return resp.StatusCode
	}

	plain := stdClient(t)
	keyed := stdClient(t, standard.WithIdempotencyKeys(host))
	elsewhere := stdClient(t, standard.WithIdempotencyKeys("api.example.com", "/pkg.S/*"))

	t.Run("POST without keys is not retried", func(t *testing.T) {
		if got := send(plain, "POST", "", strings.NewReader("pay")); got != 503 {
			t.Errorf("status: got %d, want the single attempt's 503", got)
		}
		if keys, _ := l.reset(); len(keys) != 1 || keys[0] != "" {
			t.Errorf("attempts: got keys %q, want one attempt without a key", keys)
		}
	})
	t.Run("POST with a stamped key is retried with the same key", func(t *testing.T) {
		if got := send(keyed, "POST", "", strings.NewReader("pay")); got != 200 {
			t.Errorf("status: got %d, want 200 after a retry", got)
		}
		keys, bodies := l.reset()
		if len(keys) != 2 || keys[0] != keys[1] || bodies[0] != "pay" || bodies[1] != "pay" {
			t.Fatalf("attempts: got keys %q bodies %q, want two with one key and the body", keys, bodies)
		}
		k, err := idempotency.ParseKey([]string{keys[0]}, false, 255)
		if err != nil || len(k) != 36 {
			t.Errorf("header %q: got key %q, %v; want a quoted UUID", keys[0], k, err)
		}
		send(keyed, "PATCH", "", strings.NewReader("pay"))
		again, _ := l.reset()
		if len(again) != 2 || again[0] == keys[0] || again[0] != again[1] {
			t.Errorf("next call: got keys %q, want a new key, the same on both attempts", again)
		}
	})
	t.Run("out of scope", func(t *testing.T) {
		send(elsewhere, "POST", "", strings.NewReader("pay"))
		if keys, _ := l.reset(); len(keys) != 1 || keys[0] != "" {
			t.Errorf("attempts: got keys %q, want one attempt without a key", keys)
		}
	})
	t.Run("the caller's key is kept", func(t *testing.T) {
		for _, c := range []*http.Client{plain, keyed} {
			send(c, "POST", `"mine"`, strings.NewReader("pay"))
			if keys, _ := l.reset(); len(keys) != 2 || keys[0] != `"mine"` || keys[1] != `"mine"` {
				t.Errorf("attempts: got keys %q, want the caller's on both", keys)
			}
		}
	})
	t.Run("GET gets no key", func(t *testing.T) {
		send(keyed, "GET", "", nil)
		if keys, _ := l.reset(); len(keys) != 2 || keys[0] != "" || keys[1] != "" {
			t.Errorf("attempts: got keys %q, want two without a key", keys)
		}
	})
	t.Run("a body that cannot be replayed is sent once", func(t *testing.T) {
		body := io.NopCloser(strings.NewReader("pay")) // no GetBody
		if got := send(keyed, "POST", "", body); got != 503 {
			t.Errorf("status: got %d, want the single attempt's 503", got)
		}
		if keys, _ := l.reset(); len(keys) != 1 || keys[0] == "" {
			t.Errorf("attempts: got keys %q, want one attempt with a key", keys)
		}
	})
	t.Run("empty scope is an error", func(t *testing.T) {
		if _, err := standard.New(standard.WithIdempotencyKeys()); err == nil || !strings.Contains(err.Error(), "empty scope") {
			t.Errorf("got %v, want an error about the empty scope", err)
		}
		if _, err := standard.New(standard.WithIdempotencyKeys("/bad")); err == nil || !strings.HasPrefix(err.Error(), "idempotency: ") {
			t.Errorf("got %v, want an idempotency error", err)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestLostResponseRunsOnce sends POSTs through Standard with stamped keys to
// a deduplicating server whose network loses the first response: the
// handler ran and recorded it, then the connection was dropped. The
// client's retry, with the same key, gets the recorded response, and the
// side effect happens once.
func TestLostResponseRunsOnce(t *testing.T) {
	var charges atomic.Int64
	mw := idempotency.Middleware(idempotency.NewMemoryStore())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := charges.Add(1)
		io.WriteString(w, "charge "+string(rune('0'+n)))
	}))
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			mw.ServeHTTP(httptest.NewRecorder(), r) // ran, response lost
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		mw.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := stdClient(t, standard.WithIdempotencyKeys(mustURL(t, srv.URL).Host))
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("100"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "charge 1" || resp.Header.Get("Idempotent-Replayed") != "true" || charges.Load() != 1 || requests.Load() != 2 {
		t.Errorf("got %q (replayed %q) after %d requests, %d charges; want the first charge replayed, once",
			b, resp.Header.Get("Idempotent-Replayed"), requests.Load(), charges.Load())
	}
}

// TestNetHTTPReplaysKeyedRequests documents what stamping a key changes in
// net/http itself: its Transport resends a request on a new connection
// when a reused keep-alive connection is closed after the request was
// written and before any response byte, if the request is "replayable"
// (net/http's Request.isReplayable, src/net/http/request.go, Go 1.26: GET,
// HEAD, OPTIONS, TRACE, or any method with an Idempotency-Key or
// X-Idempotency-Key header, and a body that is absent or has GetBody; the
// decision is persistConn.shouldRetryRequest in transport.go). A POST
// without a key fails there instead.
func TestNetHTTPReplaysKeyedRequests(t *testing.T) {
	for _, tt := range []struct {
		key       string
		wantPOSTs int
		wantErr   bool
	}{
		{"", 1, true},
		{`"k1"`, 2, false},
	} {
		t.Run("key="+tt.key, func(t *testing.T) {
			srv := newDroppingServer(t)
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			c := &http.Client{Transport: tr}
			// The first request opens a connection and leaves it idle.
			resp, err := c.Get(srv.url)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// The second reuses it; the server reads it and closes the
			// connection without answering.
			req, _ := http.NewRequest("POST", srv.url, strings.NewReader("pay"))
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err = c.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("error: got %v, want error %v", err, tt.wantErr)
			}
			tr.CloseIdleConnections()
			srv.close()
			if got := srv.posts.Load(); got != int64(tt.wantPOSTs) {
				t.Errorf("the server read %d POSTs, want %d", got, tt.wantPOSTs)
			}
		})
	}
}

// droppingServer answers the first request on each connection and closes
// the connection, unanswered, on reading the second.
type droppingServer struct {
	url   string
	ln    net.Listener
	posts atomic.Int64
	wg    sync.WaitGroup
}

func newDroppingServer(t *testing.T) *droppingServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &droppingServer{url: "http://" + ln.Addr().String(), ln: ln}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *droppingServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for n := 1; ; n++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if req.Method == "POST" {
			s.posts.Add(1)
		}
		if n == 2 {
			return // dropped
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func (s *droppingServer) close() {
	s.ln.Close()
	s.wg.Wait()
}

func TestBareKeys(t *testing.T) {
	var l keyLog
	srv := httptest.NewServer(&l)
	t.Cleanup(srv.Close)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	tr := resiliencehttp.NewTransport(base,
		idempotency.NewKeyer([]string{"*"}, idempotency.WithBareKeys()),
		retry.New(retry.WithBackoff(time.Millisecond, time.Millisecond)))
	resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "text/plain", strings.NewReader("pay"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	keys, _ := l.reset()
	if len(keys) != 2 || keys[0] != keys[1] || strings.Contains(keys[0], `"`) || len(keys[0]) != 36 {
		t.Errorf("keys %q, want one bare UUID on both attempts", keys)
	}
}
