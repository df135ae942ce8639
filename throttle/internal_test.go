package throttle

import (
	"context"
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

var (
	errThrottled = resilience.Mark(errors.New("429"), resilience.KindThrottled)
	errNotFound  = resilience.Mark(errors.New("404"), resilience.KindRejected)
	errRefused   = resilience.Mark(errors.New("breaker open"), resilience.KindRefused)
)

func TestProbability(t *testing.T) {
	tests := []struct {
		name              string
		k                 float64
		requests, accepts int
		want              float64
	}{
		{"nothing seen", 2, 0, 0, 0},
		{"all accepted", 2, 100, 100, 0},
		{"half accepted, K=2", 2, 100, 50, 0},
		{"a third accepted, K=2", 2, 99, 33, 33.0 / 100},
		{"none accepted: capped", 2, 99, 0, DefaultMaxProbability},
		{"half accepted, K=1", 1, 100, 50, 50.0 / 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := New(WithK(tt.k))
				for i := range tt.requests {
					th.count(i < tt.accepts)
				}
				if got := th.Probability(); math.Abs(got-tt.want) > 1e-9 {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// What counts: a request for every call with a known answer, an accept for
// every answer the dependency gave; nothing for the caller's cancellation
// or a local refusal.
func TestWhatCounts(t *testing.T) {
	tests := []struct {
		name               string
		err                error
		cancel             bool
		wantReq, wantAccep int64
	}{
		{"success", nil, false, 1, 1},
		{"rejected by the dependency (a 4xx)", errNotFound, false, 1, 1},
		{"throttled (a 429)", errThrottled, false, 1, 0},
		{"transient (a 503, a timeout)", errors.New("503"), false, 1, 0},
		{"an attempt's timeout", context.DeadlineExceeded, false, 1, 0},
		{"refused locally (an open breaker)", errRefused, false, 0, 0},
		{"the caller cancelled", context.Canceled, true, 0, 0},
		{"the caller cancelled, the transport said something else", errors.New("use of closed connection"), true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := New()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			th.Do(ctx, func(context.Context) error {
				if tt.cancel {
					cancel()
				}
				return tt.err
			})
			if th.totalReq != tt.wantReq || th.totalAcc != tt.wantAccep {
				t.Errorf("requests %d, accepts %d; want %d, %d", th.totalReq, th.totalAcc, tt.wantReq, tt.wantAccep)
			}
		})
	}
}

// A call is turned away when the draw falls under the probability, and a
// call turned away counts as a request.
func TestRejectsByDraw(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := New()
		for range 9 {
			th.count(false)
		}
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443"})
		ran := false
		op := func(context.Context) error { ran = true; return nil }

		th.random = func() float64 { return 0.9 } // p = 9/10: 0.9 is not under it
		if err := th.Do(ctx, op); err != nil || !ran {
			t.Fatalf("draw 0.9 against 0.9: got %v, ran %v; want the call let through", err, ran)
		}
		ran = false
		th.random = func() float64 { return 0.5 } // p = (10−2)/11
		err := th.Do(ctx, op)
		var re *RejectedError
		if !errors.As(err, &re) || !errors.Is(err, ErrRejected) || ran {
			t.Fatalf("draw 0.5: got %v, ran %v; want a RejectedError and the call not run", err, ran)
		}
		if re.Target != "api.example.com:443" || math.Abs(re.Probability-8.0/11) > 1e-9 {
			t.Errorf("got %+v, want the target and the probability 8/11", *re)
		}
		if k := resilience.Classify(err); k != resilience.KindRefused || k.Retryable() || k.Failure() {
			t.Errorf("Classify = %v, want refused: neither retried nor counted", k)
		}
		if th.totalReq != 11 || th.totalAcc != 1 {
			t.Errorf("requests %d, accepts %d; want 11, 1 (the rejection counted as a request)", th.totalReq, th.totalAcc)
		}
	})
}

// The window slides: refusals older than it no longer count.
func TestWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := New(WithWindow(time.Minute))
		for range 100 {
			th.count(false)
		}
		if p := th.Probability(); p < 0.9 {
			t.Fatalf("after 100 refusals: probability %v, want above 0.9", p)
		}
		time.Sleep(30 * time.Second)
		for range 100 {
			th.count(true)
		}
		// 200 requests, 100 accepts: p = 0.
		if p := th.Probability(); p != 0 {
			t.Errorf("with as many accepts as refusals: probability %v, want 0", p)
		}
		time.Sleep(31*time.Second + time.Minute/buckets)
		th.Probability() // slides the window
		if th.totalReq != 100 || th.totalAcc != 100 {
			t.Errorf("after the refusals left the window: requests %d, accepts %d; want 100, 100", th.totalReq, th.totalAcc)
		}
		time.Sleep(time.Hour)
		if p := th.Probability(); p != 0 || th.totalReq != 0 {
			t.Errorf("after an hour: probability %v, requests %d; want 0, 0", p, th.totalReq)
		}
	})
}
