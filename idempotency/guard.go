package idempotency

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Errors of [Guard.Run], matched with errors.Is.
var (
	// ErrInFlight: the key's first request still runs (HTTP 409, gRPC
	// Aborted). Retry later: Run's error is an [*InFlightError] that says
	// when.
	ErrInFlight = errors.New("idempotency: a request with this key is in flight")
	// ErrMismatch: the key was used for another request (HTTP 422, gRPC
	// FailedPrecondition).
	ErrMismatch = errors.New("idempotency: key reused for a different request")
	// ErrStore: the store failed (HTTP 503, gRPC Unavailable). The error
	// Run returns wraps the store's as well.
	ErrStore = errors.New("idempotency: store unavailable")
)

// An InFlightError is the error of [Guard.Run] for a request whose key is
// held by another request that has not finished. It matches [ErrInFlight].
type InFlightError struct {
	// RetryAfter is how long to wait before asking again: as long as the
	// key has been held so far, so that a client that follows it asks
	// about a long-running holder (or one whose instance died, which
	// never ends) at doubling intervals; at least one second; and never
	// past the end of the holder's lease, when the key is recorded or
	// free again.
	RetryAfter time.Duration
}

func (e *InFlightError) Error() string {
	return fmt.Sprintf("%v; retry after %v", ErrInFlight, e.RetryAfter)
}

// Unwrap returns [ErrInFlight].
func (e *InFlightError) Unwrap() error { return ErrInFlight }

// A Guard runs each request that carries an idempotency key at most once
// per key (see the package documentation for what exactly holds) and
// replays the recorded response to its repeats. [Middleware]
// is a Guard for an http.Handler; resiliencegrpc's
// IdempotencyServerInterceptor one for gRPC. Use a Guard directly for
// another protocol. Build it with [NewGuard]; it is safe for concurrent
// use. The zero value is not usable: it has no Store, and its Run fails
// with an error matching [ErrStore] without running the request.
type Guard struct {
	store Store
	c     config
	tel   *telemetryState
}

// NewGuard returns a Guard that keeps its reservations and records in
// store. It panics if store is nil, or an option is invalid or applies to
// the HTTP middleware only.
func NewGuard(store Store, opts ...Option) *Guard {
	g := newGuard("NewGuard", store, opts)
	switch {
	case g.c.required != nil:
		panic("idempotency: NewGuard: WithRequired applies to Middleware only")
	case g.c.fingerprint != nil:
		panic("idempotency: NewGuard: WithFingerprint applies to Middleware only")
	case g.c.principal != nil:
		panic("idempotency: NewGuard: WithPrincipal applies to Middleware only")
	case g.c.maxBody != DefaultMaxRequestBody:
		panic("idempotency: NewGuard: WithMaxRequestBody applies to Middleware only")
	}
	return g
}

func newGuard(fn string, store Store, opts []Option) *Guard {
	if store == nil {
		panic(fmt.Sprintf("idempotency: %s: nil Store", fn))
	}
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	c.validate(fn)
	return &Guard{store: store, c: c, tel: newTelemetry(c.tel)}
}

// errZeroGuard is the error of a zero Guard's Run.
var errZeroGuard = fmt.Errorf("%w: a zero Guard has no store (build it with NewGuard)", ErrStore)

// MaxKeyLength returns the longest key the Guard accepts (WithMaxKeyLength;
// the default for a zero Guard).
func (g *Guard) MaxKeyLength() int { return cmp.Or(g.c.maxKeyLen, DefaultMaxKeyLength) }

// MaxResponse returns the largest response the Guard records
// (WithMaxResponse; the default for a zero Guard).
func (g *Guard) MaxResponse() int {
	if g.store == nil {
		return DefaultMaxResponse
	}
	return g.c.maxResponse
}

// Principal returns the principal of the request in ctx given by
// WithContextPrincipal, and ok false when no such option was given.
func (g *Guard) Principal(ctx context.Context) (p string, ok bool) {
	if g.c.ctxPrincipal == nil {
		return "", false
	}
	return g.c.ctxPrincipal(ctx), true
}

// A Result is what [Guard.Run] did with a request.
type Result struct {
	// Response is the response to send: the one run returned, or the
	// recorded one when Replayed.
	Response []byte
	// Replayed reports that the request did not run: Response was
	// recorded for an earlier request with the same key.
	Replayed bool
}

// Outcome is what a run of a request tells [Guard.Run] to do with its key.
type Outcome int

const (
	// Record the response and replay it to every repeat.
	Record Outcome = iota
	// Release the key without recording anything, so that a retry runs
	// again: for a server failure (HTTP 5xx, gRPC Internal, ...).
	Release
	// TooLarge: the response is above the Guard's MaxResponse; release the
	// key, and count it.
	TooLarge
	// NotProcessed: the request was turned away without being processed
	// (HTTP 408, 409, 425, 429; gRPC ResourceExhausted, Aborted): release
	// the key, so that a retry runs, and count it apart from server
	// failures.
	NotProcessed
)

// Run runs run at most once for key, among the requests of principal, and
// returns the response to send. fingerprint identifies the request: a
// repeat of key with another fingerprint fails with [ErrMismatch]. A
// repeat of a completed request returns its recorded response, Replayed;
// a repeat while it runs fails with an [*InFlightError] (matching
// [ErrInFlight]) that says when to ask again, or waits for it
// ([WithWait]). When the store fails, Run fails with an error wrapping
// [ErrStore], or, with [WithFailOpen], runs run without deduplication.
//
// run returns the encoded response and what to do with it. When run
// panics, Run releases the key and panics again with the same value.
func (g *Guard) Run(ctx context.Context, principal, key, fingerprint string, run func(ctx context.Context) ([]byte, Outcome)) (Result, error) {
	if g.store == nil {
		return Result{}, errZeroGuard
	}
	skey := storeKey(principal, key)
	var deadline time.Time
	if g.c.wait > 0 {
		deadline = time.Now().Add(g.c.wait)
	}
	delay := 5 * time.Millisecond
	for {
		e, reserved, err := g.store.Reserve(ctx, skey, fingerprint, g.c.lease)
		switch {
		case err != nil && ctx.Err() != nil:
			return Result{}, ctx.Err()
		case err != nil:
			g.tel.storeError(ctx, "reserve", err)
			if g.c.failOpen {
				resp, _ := run(ctx)
				return Result{Response: resp}, nil
			}
			return Result{}, fmt.Errorf("%w: %w", ErrStore, err)
		case reserved:
			return g.runReserved(ctx, skey, e.Token, run)
		case e.Fingerprint != fingerprint:
			g.tel.event(ctx, eventMismatch, "")
			return Result{}, ErrMismatch
		case e.Done:
			g.tel.event(ctx, eventReplayed, "")
			return Result{Response: e.Response, Replayed: true}, nil
		}
		// In flight.
		now := time.Now()
		if deadline.IsZero() || !now.Before(deadline) {
			g.tel.event(ctx, eventConflict, "")
			return Result{}, &InFlightError{RetryAfter: g.retryAfter(e.LeaseLeft)}
		}
		delay = min(delay, deadline.Sub(now))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// retryAfter returns the wait to advise for a key held by a reservation
// whose lease has left left; see [InFlightError]. How long the key has been
// held is taken to be the lease less what is left of it: the instances
// sharing a store are expected to share one lease.
func (g *Guard) retryAfter(left time.Duration) time.Duration {
	if left <= 0 {
		return time.Second
	}
	return min(max(g.c.lease-left, time.Second), left)
}

func (g *Guard) runReserved(ctx context.Context, skey string, token uint64, run func(context.Context) ([]byte, Outcome)) (res Result, err error) {
	finished := false
	defer func() {
		if !finished {
			// run panicked: free the key for a retry, then let the
			// panic go on.
			g.release(ctx, skey, token, "panic")
		}
	}()
	resp, outcome := run(ctx)
	finished = true
	switch outcome {
	case Release:
		g.release(ctx, skey, token, "server_error")
	case TooLarge:
		g.release(ctx, skey, token, "too_large")
	case NotProcessed:
		g.release(ctx, skey, token, "not_processed")
	default:
		if len(resp) > g.c.maxResponse {
			g.release(ctx, skey, token, "too_large")
			break
		}
		// The response is already on its way to the client: a failure to
		// record it is counted, not returned.
		if err := g.store.Complete(context.WithoutCancel(ctx), skey, token, resp, g.c.ttl); err != nil {
			g.tel.storeError(ctx, "complete", err)
		}
	}
	return Result{Response: resp}, nil
}

func (g *Guard) release(ctx context.Context, skey string, token uint64, reason string) {
	g.tel.event(ctx, eventReleased, reason)
	if err := g.store.Release(context.WithoutCancel(ctx), skey, token); err != nil && !errors.Is(err, ErrLeaseLost) {
		g.tel.storeError(ctx, "release", err)
	}
}

// storeKey scopes key to principal and hashes both, so that a store holds
// keys of a fixed size whatever the client sends.
func storeKey(principal, key string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(principal)))])
	h.Write([]byte(principal))
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}
