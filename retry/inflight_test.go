package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/retry"
)

var errInFlight = errors.New("409: a request with this key is in flight")

// inFlight is the answer an adapter makes of our idempotency server's
// "in flight" reply to a keyed call: throttled, for this call alone.
func inFlight(d time.Duration) error {
	return resilience.MarkScopedRetryAfter(errInFlight, resilience.KindThrottled, d, resilience.PushbackCall)
}

// A keyed call whose first attempt still runs on the server is answered
// "in flight" until that attempt ends. Those answers spend no attempt and
// no budget: the call asks again when told, within its deadline, and gets
// the real outcome. Before, the fourth "in flight" ended the call with
// ErrExhausted and the caller was told 409 for an order being placed.
func TestInFlightAnswersSpendNoAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(resilience.WithCall(context.Background(), resilience.Call{Idempotent: true}), 30*time.Second)
		defer cancel()
		b := budget.New(budget.WithCost(1), budget.WithCapacity(1))
		p := retry.New(retry.WithMaxAttempts(3), retry.WithBudget(b))
		calls := 0
		start := time.Now()
		err := p.Do(ctx, failing(6, inFlight(time.Second), &calls))
		if err != nil || calls != 7 {
			t.Fatalf("got %v after %d calls, want success at the 7th", err, calls)
		}
		if waited := time.Since(start); waited != 6*time.Second {
			t.Errorf("waited %v, want the six advised seconds", waited)
		}
	})
}

// The asks are bounded: a call told "in flight" for ever gives up after
// its attempts plus ten asks, and never past its deadline.
func TestInFlightAsksAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		call := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
		p := retry.New(retry.WithMaxAttempts(3))
		calls := 0
		err := p.Do(call, failing(1000, inFlight(time.Second), &calls))
		if !errors.Is(err, retry.ErrExhausted) || calls != 13 {
			t.Fatalf("got %v after %d calls, want ErrExhausted after 3 attempts and 10 asks", err, calls)
		}

		ctx, cancel := context.WithTimeout(call, 4500*time.Millisecond)
		defer cancel()
		calls = 0
		err = p.Do(ctx, failing(1000, inFlight(time.Second), &calls))
		if !errors.Is(err, retry.ErrDeadline) || calls != 5 {
			t.Fatalf("with a 4.5s deadline: got %v after %d calls, want ErrDeadline after 5", err, calls)
		}
	})
}

// A failure of the dependency, or a throttle of the whole request, still
// spends attempts as before.
func TestOnlyTheCallsOwnAnswerIsFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		call := resilience.WithCall(context.Background(), resilience.Call{Idempotent: true})
		p := retry.New(retry.WithMaxAttempts(3))
		for _, err := range []error{
			resilience.MarkScopedRetryAfter(errFlaky, resilience.KindThrottled, time.Second, resilience.PushbackRequest),
			resilience.MarkScopedRetryAfter(errFlaky, resilience.KindTransient, time.Second, resilience.PushbackCall),
		} {
			calls := 0
			if got := p.Do(call, failing(1000, err, &calls)); !errors.Is(got, retry.ErrExhausted) || calls != 3 {
				t.Errorf("%v: got %v after %d calls, want ErrExhausted after 3", err, got, calls)
			}
		}
	})
}
