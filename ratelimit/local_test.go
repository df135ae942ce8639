package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience/ratelimit"
)

// TestLocalKeepsSpentQuotaWhileIdle: a key whose quota is spent keeps it
// spent while it sits idle, however long its window is next to the idle
// timeout: it is forgotten only once its bucket is full again.
func TestLocalKeepsSpentQuotaWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.NewLocal(ratelimit.Quota{Name: "daily", Limit: 2, Window: 24 * time.Hour})
		ctx := t.Context()
		for i := range 2 {
			if d, _ := l.Admit(ctx, "a"); !d.Allowed {
				t.Fatalf("request %d of a: refused", i+1)
			}
		}
		// Other keys keep coming, one a minute, so the registry looks
		// for idle keys to forget.
		other := 0
		pass := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(time.Minute)
				l.Admit(ctx, fmt.Sprint("other", other))
				other++
			}
		}
		pass(33 * time.Minute)
		if d, _ := l.Admit(ctx, "a"); d.Allowed {
			t.Fatalf("a's spent quota came back after 33 idle minutes (window 24h): %+v", d)
		}
		pass(11 * time.Hour)
		if d, _ := l.Admit(ctx, "a"); d.Allowed {
			t.Fatalf("a's spent quota came back after 11h33m (one request every 12h): %+v", d)
		}
		// One request's worth has come back after 12h, not the whole
		// quota, which a forgotten key would have.
		pass(12 * time.Hour)
		if d, _ := l.Admit(ctx, "a"); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("after 23h33m: %+v, want one request admitted with none remaining", d)
		}
		// Once its bucket is whole again, an idle key may go: memory is
		// still reclaimed. Only the keys of the last window (plus those
		// the sweeps have yet to reach) remain.
		pass(3 * 24 * time.Hour)
		if n, most := l.Len(), 2*24*60; n > most {
			t.Fatalf("Len = %d after days of one new key a minute, want at most %d (idle full keys forgotten)", n, most)
		}
	})
}

// TestLocalIdleTimeoutRaisedToWindow: WithIdleTimeout shorter than the
// window does not make a spent quota come back.
func TestLocalIdleTimeoutRaisedToWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.NewLocal(ratelimit.Quota{Name: "hourly", Limit: 1, Window: time.Hour}, ratelimit.WithIdleTimeout(time.Minute))
		ctx := t.Context()
		l.Admit(ctx, "a")
		for i := range 50 {
			time.Sleep(time.Minute)
			l.Admit(ctx, fmt.Sprint("other", i))
		}
		if d, _ := l.Admit(ctx, "a"); d.Allowed {
			t.Fatalf("a's spent quota came back after 50 minutes (window 1h, idle timeout 1m): %+v", d)
		}
	})
}

// TestLocalMaxKeysForgetsLeastRecent pins what the docs say happens when
// more keys than WithMaxKeys have quota spent within one window: the
// registry stays bounded, and the keys forgotten are the least recently
// used, which start again with a full quota.
func TestLocalMaxKeysForgetsLeastRecent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.NewLocal(ratelimit.Quota{Name: "daily", Limit: 1, Window: 24 * time.Hour}, ratelimit.WithMaxKeys(10))
		ctx := t.Context()
		for i := range 30 {
			time.Sleep(time.Second)
			if d, _ := l.Admit(ctx, fmt.Sprint("k", i)); !d.Allowed {
				t.Fatalf("k%d: first request refused", i)
			}
			if n := l.Len(); n > 10 {
				t.Fatalf("Len = %d, want at most 10", n)
			}
		}
		if d, _ := l.Admit(ctx, "k29"); d.Allowed {
			t.Fatalf("k29, the most recent key, was forgotten")
		}
		if d, _ := l.Admit(ctx, "k0"); !d.Allowed {
			t.Fatalf("k0, the least recent key, was kept past the bound")
		}
	})
}

// TestZeroLocal: the zero Local answers with an error, not a panic, and the
// middleware turns it into 503.
func TestZeroLocal(t *testing.T) {
	var l ratelimit.Local
	if _, err := l.Admit(t.Context(), "k"); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("Admit on a zero Local: %v, want ErrUnavailable", err)
	}
	if _, err := l.AdmitAt(time.Now(), "k"); !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("AdmitAt on a zero Local: %v, want ErrUnavailable", err)
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("Len = %d, want 0", n)
	}
	if r := get(t, ratelimit.Middleware(&l, nil)(ok), "/"); r.status != 503 {
		t.Fatalf("middleware over a zero Local: %d, want 503", r.status)
	}
}

// TestKeyedKeepsBucketUntilFull: the client's keyed limiter, like Local,
// forgets a key only once its bucket is full again, whatever the idle
// timeout: a host allowed 2 calls an hour does not get a fresh burst after
// ten idle minutes.
func TestKeyedKeepsBucketUntilFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := ratelimit.NewKeyed(rate.Every(30*time.Minute), 2, ratelimit.WithKey(keyFrom))
		ctxA := context.WithValue(t.Context(), keyCtx{}, "a")
		op := func(context.Context) error { return nil }
		for i := range 2 {
			if err := k.Do(ctxA, op); err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
		}
		for i := range 25 {
			time.Sleep(time.Minute)
			k.Do(context.WithValue(t.Context(), keyCtx{}, fmt.Sprint("other", i)), op)
		}
		if err := k.Do(ctxA, op); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("after 25 idle minutes (one call every 30): %v, want ErrLimited", err)
		}
	})
}
