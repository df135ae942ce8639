package budget_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience/budget"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestArithmetic(t *testing.T) {
	b := budget.New(budget.WithCapacity(12), budget.WithCost(5), budget.WithReward(2))
	step := func(what string, f func() bool, wantOK bool, wantTokens int) {
		t.Helper()
		if ok := f(); ok != wantOK || b.Tokens() != wantTokens {
			t.Fatalf("%s: got %v with %d tokens left, want %v with %d", what, ok, b.Tokens(), wantOK, wantTokens)
		}
	}
	deposit := func() bool { b.Deposit(); return true }
	refund := func() bool { b.Refund(); return true }
	step("start full", func() bool { return true }, true, 12)
	step("withdraw", b.TryWithdraw, true, 7)
	step("withdraw", b.TryWithdraw, true, 2)
	step("withdraw below the cost", b.TryWithdraw, false, 2)
	step("deposit", deposit, true, 4)
	step("deposit", deposit, true, 6)
	step("withdraw", b.TryWithdraw, true, 1)
	step("refund", refund, true, 6)
	step("refund up to the capacity", refund, true, 11)
	step("deposit capped", deposit, true, 12)
	step("refund capped", refund, true, 12)
}

func TestDefaults(t *testing.T) {
	b := budget.New()
	if b.Tokens() != budget.DefaultCapacity {
		t.Fatalf("a new budget holds %d tokens, want %d", b.Tokens(), budget.DefaultCapacity)
	}
	n := 0
	for b.TryWithdraw() {
		n++
	}
	if want := budget.DefaultCapacity / budget.DefaultCost; n != want {
		t.Fatalf("a full default budget paid for %d retries, want %d", n, want)
	}
	for range budget.DefaultCost/budget.DefaultReward - 1 {
		b.Deposit()
	}
	if b.TryWithdraw() {
		t.Fatal("paid for a retry before enough successes")
	}
	b.Deposit()
	if !b.TryWithdraw() {
		t.Fatalf("cost/reward = %d successes must pay for one retry", budget.DefaultCost/budget.DefaultReward)
	}
}

func TestNilAndZeroPlaceNoLimit(t *testing.T) {
	var nilB *budget.Budget
	zero := new(budget.Budget)
	for _, b := range []*budget.Budget{nilB, zero} {
		for range 1000 {
			if !b.TryWithdraw() {
				t.Fatal("a nil or zero budget refused a retry")
			}
		}
		b.Deposit()
		b.Refund()
	}
}

func TestConcurrentUseConservesTokens(t *testing.T) {
	b := budget.New(budget.WithCapacity(1000), budget.WithCost(1), budget.WithReward(1))
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got int
	)
	for range 8 {
		wg.Go(func() {
			n := 0
			for range 500 {
				if b.TryWithdraw() {
					n++
				}
			}
			mu.Lock()
			got += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if got != 1000 || b.Tokens() != 0 {
		t.Fatalf("8×500 concurrent withdrawals from 1000 tokens: %d succeeded, %d left; want 1000 and 0", got, b.Tokens())
	}
}

func TestInvalidOptionsPanic(t *testing.T) {
	tests := []struct {
		opts []budget.Option
		want string
	}{
		{[]budget.Option{budget.WithCost(0)}, "budget: WithCost"},
		{[]budget.Option{budget.WithReward(0)}, "budget: WithReward"},
		{[]budget.Option{budget.WithCapacity(4)}, "budget: WithCapacity"},
		{[]budget.Option{budget.WithCapacity(10), budget.WithCost(11)}, "budget: WithCapacity"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r, _ := recover().(string)
				if !strings.HasPrefix(r, tt.want) {
					t.Errorf("got panic %q, want one starting %q", r, tt.want)
				}
			}()
			budget.New(tt.opts...)
		}()
	}
}

func TestErrExhausted(t *testing.T) {
	if !errors.Is(budget.ErrExhausted, budget.ErrExhausted) || budget.ErrExhausted.Error() != "budget: retry budget exhausted" {
		t.Fatal(budget.ErrExhausted)
	}
}
