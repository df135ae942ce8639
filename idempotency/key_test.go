package idempotency_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/retry"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		vs   []string
		bare bool
		want string
		err  error
	}{
		{[]string{`"abc"`}, false, "abc", nil},
		{[]string{`"a\"b\\c"`}, false, `a"b\c`, nil},
		{[]string{`"abc";p=1`}, false, "abc", nil},
		{[]string{` "abc" `}, false, "abc", nil},
		{[]string{`"with space"`}, false, "with space", nil},
		{nil, false, "", idempotency.ErrKeyMissing},
		{[]string{`abc`}, false, "", idempotency.ErrKeyMalformed},
		{[]string{`abc`}, true, "abc", nil},
		{[]string{`123-456`}, true, "123-456", nil},
		{[]string{`"abc`}, false, "", idempotency.ErrKeyMalformed},
		{[]string{`""`}, true, "", idempotency.ErrKeyMalformed},
		{[]string{`"a"`, `"b"`}, true, "", idempotency.ErrKeyMalformed},
		{[]string{`"` + strings.Repeat("x", 11) + `"`}, false, "", idempotency.ErrKeyTooLong},
		{[]string{strings.Repeat("x", 1000)}, true, "", idempotency.ErrKeyTooLong},
		{[]string{"\"a\u00e9\""}, false, "", idempotency.ErrKeyMalformed},
		// A bare key is taken whole: what looks like parameters is part
		// of it.
		{[]string{`inv;a=1`}, true, "inv;a=1", nil},
		{[]string{`inv;a=2`}, true, "inv;a=2", nil},
		{[]string{`1;a`}, true, "1;a", nil},
		{[]string{` abc `}, true, "abc", nil},
		{[]string{`"abc";p=1`}, true, "abc", nil},
		{[]string{`inv;a=1`}, false, "", idempotency.ErrKeyMalformed},
	}
	for _, tt := range tests {
		got, err := idempotency.ParseKey(tt.vs, tt.bare, 10)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("ParseKey(%q, %v): got %q, %v; want %q, %v", tt.vs, tt.bare, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatKey(t *testing.T) {
	for _, tt := range []struct {
		key  string
		bare bool
		want string
	}{
		{"abc", false, `"abc"`},
		{`a"b\c`, false, `"a\"b\\c"`},
		{"abc", true, "abc"},
	} {
		got, err := idempotency.FormatKey(tt.key, tt.bare)
		if got != tt.want || err != nil {
			t.Errorf("FormatKey(%q, %v): got %q, %v; want %q", tt.key, tt.bare, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "a\nb", "é"} {
		if _, err := idempotency.FormatKey(bad, false); !errors.Is(err, idempotency.ErrKeyMalformed) {
			t.Errorf("FormatKey(%q): got %v, want ErrKeyMalformed", bad, err)
		}
	}
	if _, err := idempotency.FormatKey("a b", true); err == nil {
		t.Error("FormatKey bare with a space: no error")
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b"`, `"abc";p=1`, `123`, `"`, `?1`, `:YWJj:`, `("a" "b")`, `"` + strings.Repeat("k", 300) + `"`} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, v string, bare bool) {
		const max = 255
		key, err := idempotency.ParseKey([]string{v}, bare, max)
		if err != nil {
			if !errors.Is(err, idempotency.ErrKeyMalformed) && !errors.Is(err, idempotency.ErrKeyTooLong) {
				t.Fatalf("ParseKey(%q): error %v matches no sentinel", v, err)
			}
			return
		}
		if key == "" || len(key) > max {
			t.Fatalf("ParseKey(%q) = %q: empty or too long", v, key)
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("ParseKey(%q) = %q: not printable ASCII", v, key)
			}
		}
		// What is accepted round-trips through the strict form.
		s, err := idempotency.FormatKey(key, false)
		if err != nil {
			t.Fatalf("FormatKey(%q): %v", key, err)
		}
		if again, err := idempotency.ParseKey([]string{s}, false, max); err != nil || again != key {
			t.Fatalf("round trip of %q through %q: got %q, %v", key, s, again, err)
		}
	})
}

// FuzzBareKeysAreDistinct checks that in bare mode (always used by gRPC)
// distinct accepted values are distinct keys: a bare value is the key as it
// is, around spaces aside, and a quoted one the Structured Field String it
// holds, whose serialization is never a bare value.
func FuzzBareKeysAreDistinct(f *testing.F) {
	for _, s := range [][2]string{
		{"invoice-17;attempt=1", "invoice-17;attempt=2"},
		{"1;a", "1;b"},
		{"abc;p", "abc"},
		{`"abc"`, "abc"},
		{`"abc";p=1`, `"abc";p=2`},
		{"?1", "?0"},
		{":YWJj:", "abc"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		const max = 255
		ka, erra := idempotency.ParseKey([]string{a}, true, max)
		kb, errb := idempotency.ParseKey([]string{b}, true, max)
		if erra != nil || errb != nil {
			return
		}
		ta, tb := strings.Trim(a, " \t"), strings.Trim(b, " \t")
		for _, c := range [][2]string{{ta, ka}, {tb, kb}} {
			if !strings.HasPrefix(c[0], `"`) && c[0] != c[1] {
				t.Fatalf("bare value %q: got key %q, want it whole", c[0], c[1])
			}
		}
		if ka == kb && ta != tb && !strings.HasPrefix(ta, `"`) && !strings.HasPrefix(tb, `"`) {
			t.Fatalf("distinct bare values %q and %q give one key %q", a, b, ka)
		}
	})
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := idempotency.NewKey()
		if !uuidV4.MatchString(k) || seen[k] {
			t.Fatalf("NewKey: %q is not a new version 4 UUID", k)
		}
		seen[k] = true
	}
}

// TestKeyer checks the client policy on its own: one key per logical call,
// the same on every attempt of a retry, none for a call that is idempotent
// or out of scope.
func TestKeyer(t *testing.T) {
	k := idempotency.NewKeyer([]string{"api.example.com", "pay.example.com:8443", "/pkg.Pay/Charge", "/pkg.Cart/*"})
	p := resilience.Chain(k, retry.New(retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithMaxAttempts(3)))
	attempts := func(c resilience.Call) []string {
		var keys []string
		p.Do(resilience.WithCall(context.Background(), c), func(ctx context.Context) error {
			got, _ := resilience.CallFrom(ctx)
			keys = append(keys, got.IdempotencyKey)
			return errors.New("connection reset")
		})
		return keys
	}
	for _, tt := range []struct {
		call    resilience.Call
		stamped bool
	}{
		{resilience.Call{Target: "api.example.com:443", Method: "POST"}, true},
		{resilience.Call{Target: "API.example.com:80", Method: "PATCH"}, true},
		{resilience.Call{Target: "pay.example.com:8443", Method: "POST"}, true},
		{resilience.Call{Target: "pay.example.com:443", Method: "POST"}, false},
		{resilience.Call{Target: "other.example.com:443", Method: "POST"}, false},
		{resilience.Call{Target: "grpc:443", Method: "/pkg.Pay/Charge"}, true},
		{resilience.Call{Target: "grpc:443", Method: "/pkg.Pay/Refund"}, false},
		{resilience.Call{Target: "grpc:443", Method: "/pkg.Cart/Add"}, true},
		{resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true}, false},
	} {
		keys := attempts(tt.call)
		switch {
		case tt.stamped && (len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0]):
			t.Errorf("%+v: got keys %q, want one key on all 3 attempts", tt.call, keys)
		case !tt.stamped && !tt.call.Idempotent && (len(keys) != 1 || keys[0] != ""):
			t.Errorf("%+v: got keys %q, want one attempt without a key", tt.call, keys)
		case tt.call.Idempotent && (len(keys) != 3 || keys[0] != ""):
			t.Errorf("%+v: got keys %q, want 3 attempts without a key", tt.call, keys)
		}
	}
	a := attempts(resilience.Call{Target: "api.example.com:443", Method: "POST"})
	b := attempts(resilience.Call{Target: "api.example.com:443", Method: "POST"})
	if a[0] == b[0] {
		t.Errorf("two calls got the same key %q", a[0])
	}
	// Outside any call there is nothing to stamp.
	k.Do(context.Background(), func(ctx context.Context) error {
		if _, ok := resilience.CallFrom(ctx); ok {
			t.Error("a call appeared")
		}
		return nil
	})
}

// TestFencingThroughMiddleware runs a first request whose lease runs out
// while it still runs: a retry takes the key over and its response is
// recorded; the first one's response, later, is not recorded over it.
func TestFencingThroughMiddleware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		runs := 0
		h := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithLease(time.Second))(httpHandler(func(n int) string {
			if n == 1 {
				<-release
				return "first"
			}
			return "second"
		}, &runs))
		done := make(chan response)
		go func() { done <- serve(h, "POST", key1, "", "{}") }()
		synctest.Wait()
		time.Sleep(2 * time.Second)
		if got := serve(h, "POST", key1, "", "{}"); got.body != "second" {
			t.Fatalf("retry after the lease: got %q, want a new run", got.body)
		}
		close(release)
		if got := <-done; got.body != "first" {
			t.Fatalf("first: got %q", got.body)
		}
		if got := serve(h, "POST", key1, "", "{}"); got.body != "second" || got.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat: got %q %v, want the retry's record", got.body, got.header)
		}
	})
}
