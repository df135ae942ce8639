package standard_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

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
