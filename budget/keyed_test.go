package budget_test

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func call(target string) context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: target, Idempotent: true})
}

// Each host spends its own budget; calls without a target spend the keyed
// Budget's own.
func TestKeyedPerHost(t *testing.T) {
	b := budget.NewKeyed(budget.WithCapacity(10), budget.WithCost(5))
	down, up := call("down:443"), call("up:443")
	for range 2 {
		if !b.For(down).TryWithdraw() {
			t.Fatal("down:443 refused before its capacity was spent")
		}
	}
	if b.For(down).TryWithdraw() {
		t.Fatal("down:443 spent more than its capacity")
	}
	if !b.For(up).TryWithdraw() || b.For(up).Tokens() != 5 {
		t.Fatalf("up:443 has %d tokens: another host's failures spent them", b.For(up).Tokens())
	}
	if got := b.For(context.Background()); got != b || b.Tokens() != 10 {
		t.Fatalf("outside any call: For returned %p (want the keyed budget %p), %d tokens", got, b, b.Tokens())
	}
	if b.Len() != 2 {
		t.Fatalf("Len %d, want 2", b.Len())
	}
	var plain *budget.Budget
	if plain.For(down) != nil || budget.New().Len() != 0 {
		t.Fatal("For of a nil or unkeyed budget must return it")
	}
	p := budget.New()
	if p.For(down) != p {
		t.Fatal("For of an unkeyed budget must return it")
	}
}

// The registry is bounded: past WithMaxKeys the least recently used keys
// are forgotten, and start full again.
func TestKeyedBounded(t *testing.T) {
	b := budget.NewKeyed(budget.WithMaxKeys(10), budget.WithCapacity(5), budget.WithCost(5))
	for i := range 1000 {
		b.For(call(fmt.Sprintf("h%d:443", i))).TryWithdraw()
	}
	if n := b.Len(); n > 10 {
		t.Fatalf("%d keys kept, want at most 10", n)
	}
	if got := b.For(call("h0:443")).Tokens(); got != 5 {
		t.Fatalf("a forgotten key has %d tokens, want a full budget (5)", got)
	}
}

func TestKeyedCustomKey(t *testing.T) {
	type tenant struct{}
	b := budget.NewKeyed(budget.WithCapacity(5), budget.WithCost(5),
		budget.WithKey(func(ctx context.Context) string { s, _ := ctx.Value(tenant{}).(string); return s }))
	a := context.WithValue(call("x:443"), tenant{}, "a")
	if !b.For(a).TryWithdraw() || b.For(a).TryWithdraw() {
		t.Fatal("tenant a: want one withdrawal of 5 tokens")
	}
	if !b.For(context.WithValue(call("x:443"), tenant{}, "b")).TryWithdraw() {
		t.Fatal("tenant b refused: tenant a spent its budget")
	}
}

func TestKeyedOptionsPanic(t *testing.T) {
	for _, tt := range []struct {
		keyed bool
		opt   budget.Option
		want  string
	}{
		{false, budget.WithKey(func(context.Context) string { return "" }), "budget: WithKey applies to NewKeyed only"},
		{false, budget.WithMaxKeys(3), "budget: WithMaxKeys applies to NewKeyed only"},
		{true, budget.WithKey(nil), "budget: WithKey: f is nil"},
		{true, budget.WithMaxKeys(0), "budget: WithMaxKeys"},
		{true, budget.WithIdleTimeout(0), "budget: WithIdleTimeout"},
	} {
		func() {
			defer func() {
				r, _ := recover().(string)
				if !strings.HasPrefix(r, tt.want) {
					t.Errorf("got panic %q, want one starting %q", r, tt.want)
				}
			}()
			if tt.keyed {
				budget.NewKeyed(tt.opt)
			} else {
				budget.New(tt.opt)
			}
		}()
	}
}

// Keyed by target, the gauge reports each host's level; with
// WithoutServerAddress, the lowest level of all, as one series.
func TestKeyedGauge(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []budget.Option
		want map[string]int64
	}{
		{"per host", nil, map[string]int64{
			"resilience.name=api": 20,
			"resilience.name=api server.address=down server.port=443": 10,
			"resilience.name=api server.address=up server.port=443":   20,
		}},
		{"WithoutServerAddress", []budget.Option{budget.WithoutServerAddress()}, map[string]int64{"resilience.name=api": 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := telemetrytest.New(t)
			b := budget.NewKeyed(append([]budget.Option{budget.WithName("api"), budget.WithCapacity(20), budget.WithMeterProvider(h.MeterProvider)}, tt.opts...)...)
			defer runtime.KeepAlive(b)
			b.For(call("down:443")).TryWithdraw()
			b.For(call("down:443")).TryWithdraw()
			b.For(call("up:443")).Deposit()
			got := telemetrytest.Points(t, h.Collect(t), "resilience.budget.tokens", "{token}")
			if !maps.Equal(got, tt.want) {
				t.Fatalf("resilience.budget.tokens: got %v, want %v", got, tt.want)
			}
		})
	}
}
