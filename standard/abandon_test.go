package standard_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/standard"
)

// A half-open probe whose caller gives up without closing its result (a
// response body dropped unread) does not leave the host half-open with its
// probe in flight forever: the call's context ending releases the probe,
// uncounted, and the next call may probe.
func TestAbandonedProbeReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithRetries(0),
			standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		call := func(ctx context.Context) context.Context {
			return resilience.WithCall(ctx, resilience.Call{Target: "api.example:443", Method: "GET", Idempotent: true})
		}
		// One failure opens the breaker.
		p.Do(call(context.Background()), func(context.Context) error { return errors.New("refused") })
		time.Sleep(2 * time.Second) // past the open duration: the next call probes

		ctx, cancel := context.WithCancel(context.Background())
		if err := p.Do(call(ctx), func(ctx context.Context) error {
			resilience.Hold(ctx, nil) // a body its caller will never close
			return nil
		}); err != nil {
			t.Fatalf("probe: %v", err)
		}
		cancel() // the caller gives up and drops the body
		synctest.Wait()

		ran := false
		err = p.Do(call(context.Background()), func(context.Context) error { ran = true; return nil })
		if err != nil || !ran {
			t.Fatalf("next call: %v (ran %v), want a new probe let through", err, ran)
		}
	})
}
