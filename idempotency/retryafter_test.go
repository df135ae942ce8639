package idempotency_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/idempotency"
)

// TestConflictRetryAfter: the 409 for a key whose holder never finishes
// (its instance died, say) advises waits that grow with how long the key
// has been held, from 1 second, and never past the end of its lease, when
// the key is free again; a live holder that finishes quickly is asked
// about again after 1 second.
func TestConflictRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := make(chan struct{})
		h := idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithLease(time.Minute))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-stuck
		}))
		var wg sync.WaitGroup
		wg.Go(func() { serve(h, "POST", key1, "", "{}") })
		synctest.Wait()
		for _, step := range []struct {
			after time.Duration
			want  string
		}{
			{0, "1"},                       // held for no time yet: ask again in 1s
			{1500 * time.Millisecond, "2"}, // held 1.5s: rounded up
			{8500 * time.Millisecond, "10"},
			{40 * time.Second, "10"}, // held 50s: 10s of the lease left
			{5 * time.Second, "5"},
		} {
			time.Sleep(step.after)
			got := serve(h, "POST", key1, "", "{}")
			problemOf(t, got, http.StatusConflict)
			if ra := got.header.Get("Retry-After"); ra != step.want {
				t.Errorf("after %v more: Retry-After %q, want %q", step.after, ra, step.want)
			}
		}
		close(stuck)
		wg.Wait()
	})
}

var _ = httptest.NewRecorder

// TestInFlightError: Guard.Run's conflict error carries the advised wait
// and matches ErrInFlight.
func TestInFlightError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := idempotency.NewGuard(idempotency.NewMemoryStore(), idempotency.WithLease(time.Minute))
		ctx := context.Background()
		g.Run(ctx, "", "k", "fp", func(ctx context.Context) ([]byte, idempotency.Outcome) {
			time.Sleep(3 * time.Second)
			_, err := g.Run(ctx, "", "k", "fp", nil)
			var ife *idempotency.InFlightError
			if !errors.Is(err, idempotency.ErrInFlight) || !errors.As(err, &ife) || ife.RetryAfter != 3*time.Second {
				t.Errorf("got %v (%+v), want an InFlightError advising 3s", err, ife)
			}
			return []byte("r"), idempotency.Record
		})
	})
}
