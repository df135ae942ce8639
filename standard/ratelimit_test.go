package standard_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/standard"
)

// A burst of 50 calls against WithRateLimit(100, 20): paced by default, all
// through within 300ms; with ratelimit.WithMaxWait(0), the 30 without a
// token fail at once.
func TestRateLimitPacesOrFailsFast(t *testing.T) {
	for _, tt := range []struct {
		name        string
		opts        []ratelimit.Option
		ok, limited int
		took        time.Duration
	}{
		{"default", nil, 50, 0, 300 * time.Millisecond},
		{"WithMaxWait(0)", []ratelimit.Option{ratelimit.WithMaxWait(0)}, 20, 30, 0},
	} {
		synctest.Test(t, func(t *testing.T) {
			p, err := standard.New(standard.WithRateLimit(100, 20, tt.opts...))
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu          sync.Mutex
				wg          sync.WaitGroup
				ok, limited int
			)
			began := time.Now()
			for range 50 {
				wg.Go(func() {
					ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example:443", Method: "GET", Idempotent: true})
					err := p.Do(ctx, func(context.Context) error { return nil })
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, ratelimit.ErrLimited):
						limited++
					default:
						t.Errorf("unexpected error %v", err)
					}
				})
			}
			wg.Wait()
			if ok != tt.ok || limited != tt.limited {
				t.Errorf("%s: %d succeeded, %d turned away; want %d, %d", tt.name, ok, limited, tt.ok, tt.limited)
			}
			if took := time.Since(began); took > tt.took {
				t.Errorf("%s: the burst took %v, want at most %v", tt.name, took, tt.took)
			}
		})
	}
}

// The total timeout bounds the whole call, the rate limit's wait included:
// a call that waits 250ms for its turn under a 300ms total has 50ms left
// for its attempt. Before, the wait came on top of the total (550ms).
func TestTotalTimeoutIncludesRateLimitWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithRateLimit(rate.Every(250*time.Millisecond), 1),
			standard.WithTotalTimeout(300*time.Millisecond), standard.WithAttemptTimeout(300*time.Millisecond),
			standard.WithoutBreaker())
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example:443", Method: "GET", Idempotent: true})
		if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err) // takes the only token
		}
		began := time.Now()
		err = p.Do(ctx, func(ctx context.Context) error {
			<-ctx.Done() // a slow dependency
			return ctx.Err()
		})
		if took := time.Since(began); took != 300*time.Millisecond || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the call ended after %v with %v, want the total timeout's deadline after 300ms", took, err)
		}
		// A turn that would come after the total timeout: turned away at
		// once.
		p2, err := standard.New(standard.WithRateLimit(rate.Every(time.Second), 1),
			standard.WithTotalTimeout(300*time.Millisecond), standard.WithAttemptTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := p2.Do(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err) // takes the only token
		}
		began = time.Now()
		err = p2.Do(ctx, func(context.Context) error { return nil })
		if took := time.Since(began); took != 0 || !errors.Is(err, ratelimit.ErrLimited) {
			t.Errorf("a turn 1s away under a 300ms total: %v after %v, want ratelimit.ErrLimited at once", err, took)
		}
	})
}
