package resilience

import (
	"context"
	"errors"
	"fmt"

	"github.com/resilience-go/resilience/internal/ctxwatch"
)

// A Policy runs an operation under one resilience rule.
//
// Do calls op zero or more times with a context derived from ctx (never
// another one: a [Chain] finds the call's operation through it) and returns
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
	var flat []Policy
	for i, p := range ps {
		switch p := p.(type) {
		case nil:
			panic(fmt.Sprintf("resilience: Chain: policy %d is nil", i))
		case *chain:
			flat = append(flat, p.ps...)
		default:
			flat = append(flat, p)
		}
	}
	switch len(flat) {
	case 0:
		return PolicyFunc(func(ctx context.Context, op func(context.Context) error) error { return op(ctx) })
	case 1:
		return flat[0]
	}
	c := &chain{ps: flat, next: make([]func(context.Context) error, len(flat))}
	// next[i] runs policies i+1... and then the call's operation. They are
	// made once, here, and find the call's operation in the context (see
	// chainCtx), so that a call through a chain of any depth allocates one
	// small context instead of a closure per level.
	last := len(flat) - 1
	c.next[last] = func(ctx context.Context) error {
		f, ok := ctx.Value(chainKey{c}).(*chainCtx)
		switch {
		case !ok:
			return errLostChain
		case f.run != nil:
			return f.run.Run(ctx)
		}
		return f.op(ctx)
	}
	for i := last - 1; i >= 0; i-- {
		p, next := flat[i+1], c.next[i+1]
		c.next[i] = func(ctx context.Context) error { return p.Do(ctx, next) }
	}
	return c
}

// chain runs its policies nested, ps[0] outermost.
type chain struct {
	ps   []Policy
	next []func(context.Context) error // next[i] runs what lies inside ps[i]
}

// errLostChain is returned by a chain whose operation ran with a context
// not derived from the one the chain passed down: a policy broke the
// contract.
var errLostChain = Mark(errors.New("resilience: Chain: a policy ran the operation with a context not derived from its own"), KindPermanent)

func (c *chain) Do(ctx context.Context, op func(context.Context) error) error {
	return c.ps[0].Do(&chainCtx{Context: ctx, c: c, op: op}, c.next[0])
}

// chainKey finds the chainCtx of one chain: keyed by the chain, so that a
// chain run inside another's operation finds its own call.
type chainKey struct{ c *chain }

// chainCtx carries one call's operation through a chain's policies.
type chainCtx struct {
	context.Context
	c   *chain
	op  func(context.Context) error
	run Operation // instead of op, for Do and DoCall
}

// An Operation is an operation as a value, for [DoCall]: Run(ctx) is what
// op(ctx) is to [Policy.Do]. A pointer the caller already has costs no
// allocation as an Operation, where a method value or a closure would.
type Operation interface {
	Run(ctx context.Context) error
}

// DoCall runs op under p as call c: it is p.Do(WithCall(ctx, c), op.Run)
// in fewer allocations. Through a [Chain], the call's description and the
// chain's context take one allocation, and op none. Adapters call it once
// per call.
func DoCall(ctx context.Context, p Policy, c Call, op Operation) error {
	ch, ok := p.(*chain)
	if !ok {
		return p.Do(WithCall(ctx, c), op.Run)
	}
	f := &callFrame{call: callCtx{attemptCtx: attemptCtx{Context: ctx, n: 1}, val: c}}
	f.call.call, f.call.h = &f.call.val, &f.call.hs
	f.chainCtx = chainCtx{Context: &f.call.attemptCtx, c: ch, run: op}
	return ch.ps[0].Do(&f.chainCtx, ch.next[0])
}

// callFrame is a call run by [DoCall] through a chain: the context
// WithCall would return, and the chain's context on top of it.
type callFrame struct {
	call     callCtx
	chainCtx chainCtx
}

func (f *chainCtx) Value(key any) any {
	if k, ok := key.(chainKey); ok && k.c == f.c {
		return f
	}
	return f.Context.Value(key)
}

// AfterFunc lets contexts derived from this one follow its cancellation
// without a goroutine, whatever the embedded context is.
func (f *chainCtx) AfterFunc(fn func()) (stop func() bool) {
	if af, ok := f.Context.(afterFuncer); ok {
		return af.AfterFunc(fn)
	}
	if f.Context.Done() == nil {
		return neverStop // the context never ends: nothing to register
	}
	return context.AfterFunc(f.Context, fn)
}

// ForwardWatch registers r with the context underneath (see
// internal/ctxwatch).
func (f *chainCtx) ForwardWatch(r *ctxwatch.Reg) bool { return ctxwatch.Forward(f.Context, r) }

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
	if c, ok := p.(*chain); ok {
		// One allocation for the whole call: the frame is the chain's
		// context and holds op and its value.
		f := &doFrame[T]{fn: op}
		f.chainCtx = chainCtx{Context: ctx, c: c, run: f}
		err := c.ps[0].Do(&f.chainCtx, c.next[0])
		return f.v, err
	}
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

// doFrame is a call of [Do] through a chain.
type doFrame[T any] struct {
	chainCtx
	fn func(context.Context) (T, error)
	v  T
}

func (f *doFrame[T]) Run(ctx context.Context) error {
	if Parallel(ctx) {
		// Attempts overlap (hedging): only the kept one's value is the
		// call's.
		w, err := f.fn(ctx)
		OnKeep(ctx, func() { f.v = w })
		return err
	}
	var err error
	f.v, err = f.fn(ctx)
	return err
}
