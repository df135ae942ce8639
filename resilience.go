package resilience

import (
	"context"
	"fmt"
)

// A Policy runs an operation under one resilience rule.
//
// Do calls op zero or more times with a context derived from ctx and returns
// op's error, or an error of its own when the rule stops the call. Policies
// are built once and shared: Do must be safe for concurrent use.
//
// An op that panics is not recovered: the panic unwinds through every policy,
// as it would without them; resources a policy took are released on the way
// out only where the policy says so in its documentation.
type Policy interface {
	Do(ctx context.Context, op func(context.Context) error) error
}

// PolicyFunc adapts a function to a [Policy].
type PolicyFunc func(ctx context.Context, op func(context.Context) error) error

// Do calls f(ctx, op).
func (f PolicyFunc) Do(ctx context.Context, op func(context.Context) error) error {
	return f(ctx, op)
}

// Chain composes policies into one. ps[0] is the outermost: it runs first and
// sees the result of everything inside it. Chain with no policies runs the
// operation once, unchanged. Nested chains are flattened.
//
// The recommended order, outermost first, is rate limit, total timeout,
// retry, circuit breaker, bulkhead, per-attempt timeout.
//
// Chain panics if a policy is nil.
func Chain(ps ...Policy) Policy {
	var c chain
	for i, p := range ps {
		switch p := p.(type) {
		case nil:
			panic(fmt.Sprintf("resilience: Chain: policy %d is nil", i))
		case chain:
			c = append(c, p...)
		default:
			c = append(c, p)
		}
	}
	if len(c) == 1 {
		return c[0]
	}
	return c
}

type chain []Policy

func (c chain) Do(ctx context.Context, op func(context.Context) error) error {
	switch len(c) {
	case 0:
		return op(ctx)
	case 1:
		return c[0].Do(ctx, op)
	}
	rest := c[1:]
	return c[0].Do(ctx, func(ctx context.Context) error { return rest.Do(ctx, op) })
}

// Do runs op under p and returns its value and p's error. The value is the
// one returned by the last run of op: when p runs op more than once (a
// retry), earlier values are dropped; when p never runs op (an open
// breaker), it is the zero T. When p stops after a run of op, for example a
// retry turned away by a breaker on its second attempt, the value of the
// earlier run is still returned alongside p's error: as usual in Go, do not
// use the value when the error is not nil unless op's contract says so.
// When p runs op in parallel attempts (hedging), the value is that of the
// attempt p kept, the one whose error it returns.
func Do[T any](ctx context.Context, p Policy, op func(context.Context) (T, error)) (T, error) {
	var v T
	err := p.Do(ctx, func(ctx context.Context) error {
		if Parallel(ctx) {
			// Attempts overlap (hedging): only the kept one's value is
			// the call's.
			w, err := op(ctx)
			OnKeep(ctx, func() { v = w })
			return err
		}
		var err error
		v, err = op(ctx)
		return err
	})
	return v, err
}
