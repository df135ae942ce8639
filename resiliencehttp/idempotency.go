package resiliencehttp

import (
	"context"
	"net/http"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
)

// An idempotency.Keyer among the transport's policies gives an unsafe
// request (POST, PATCH) without an Idempotency-Key a key of its own, once
// per RoundTrip; the transport sends it with every attempt, and the
// request may be retried like one that carried a key from the start.

// stampKey sets the Idempotency-Key header of the call in ctx on r, an
// attempt's copy of the caller's request, if a policy gave the call a key
// and the request has none. The caller's header map is not modified.
func stampKey(ctx context.Context, r *http.Request) {
	v, ok := idempotency.Header(ctx)
	if !ok || r.Header.Get(idempotency.HeaderName) != "" {
		return
	}
	r.Header = r.Header.Clone()
	if r.Header == nil {
		r.Header = make(http.Header, 1)
	}
	r.Header.Set(idempotency.HeaderName, v)
}

// noReplay records in call why an unsafe request cannot be retried even if
// a policy gives it a key: its body cannot be sent again (no GetBody). The
// transport buffers only the bodies of requests that are idempotent when
// they arrive, so that a POST that is never retried is streamed as it is.
func noReplay(req *http.Request, call *resilience.Call) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		call.NoRetry = ErrBodyNotReplayable
	}
}
