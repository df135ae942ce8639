package idempotency

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Middleware returns HTTP middleware that runs each request carrying an
// Idempotency-Key header at most once per key (see the package
// documentation for what exactly holds), a [Guard] that keeps its
// reservations and records in store:
//
//   - The first request with a key runs. Its response is sent as the
//     handler writes it and recorded: the status, the header fields the
//     handler set, the body and the trailers (declared in a Trailer field,
//     or set with http.TrailerPrefix), with a fingerprint of the request
//     (method, path and query, body digest; see [WithFingerprint]).
//   - A repeat after it completed gets the recorded status, fields, body and
//     trailers, marked Idempotent-Replayed: true; the handler does not run.
//     Fields an outer middleware set for the repeat itself (before this
//     one runs) win over recorded ones, and are never recorded: a rate
//     limiter's RateLimit fields, a request id. The RateLimit and
//     RateLimit-Policy fields are never recorded at all, since they
//     describe a quota as it was.
//   - A repeat while it runs gets 409 Conflict with a Retry-After as long as
//     the key has been held (at least 1 second, never past the end of the
//     holder's lease; see [InFlightError]), or waits for its result
//     ([WithWait]).
//   - The same key with another fingerprint gets 422 Unprocessable Content.
//   - A malformed key (not a Structured Field String; see [WithBareKeys]),
//     one longer than 255 bytes ([WithMaxKeyLength]), or a missing key where
//     [WithRequired] asks for one gets 400 Bad Request; a body above 1 MiB
//     ([WithMaxRequestBody]) 413 Content Too Large. Requests without a key
//     pass through otherwise.
//   - Keys are scoped by principal ([WithPrincipal]; the Authorization
//     header by default): a client never receives a response recorded for
//     another.
//   - Which responses are recorded: every 2xx, 3xx and 4xx status except
//     those that say the request was not processed and may be sent again:
//     408 Request Timeout, 409 Conflict, 425 Too Early and 429 Too Many
//     Requests. Those, any 5xx, a hijacked connection, and a panic in the
//     handler release the key instead, so that a retry runs the request
//     again. (Stripe records 500s too and replays them; here a server
//     failure is taken to have left nothing worth replaying, and the retry
//     is what the client wants. A handler that fails after a side effect
//     must make the side effect itself idempotent or answer with a status
//     that is recorded.) The panic goes on after the release. A response
//     whose record (body, fields and trailers) is larger than 1 MiB
//     ([WithMaxResponse]) is not recorded either: its key is released.
//   - Records expire after 24 hours ([WithTTL]); a reservation whose
//     instance died expires after its lease ([WithLease]).
//   - When the store fails, the request fails with 503 Service
//     Unavailable, Retry-After: 1 and a problem whose detail says the
//     request was not run and why (the store is full, did not answer in
//     time, or is unavailable), or runs without deduplication with
//     [WithFailOpen]. It never panics.
//
// Stack it inside load shedding and rate limiting, next to the handler:
// ratelimit.Middleware(idempotency.Middleware(h)). A request shed or
// throttled then never reaches the record, and its repeat gets the
// limiter's decision for itself. (Stacked the other way round, a 429 from
// the inner limiter is not recorded either, but a replay, which the
// limiter never sees, is not counted against the quota.)
//
// Errors are answered with application/problem+json bodies (RFC 9457). It
// panics if store is nil or an option is invalid.
func Middleware(store Store, opts ...Option) func(http.Handler) http.Handler {
	g := newGuard("Middleware", store, opts)
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("idempotency: Middleware: nil http.Handler")
		}
		return &handler{g: g, next: next}
	}
}

type handler struct {
	g    *Guard
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	vs := r.Header.Values(HeaderName)
	if len(vs) == 0 {
		if g.c.required[r.Method] {
			g.tel.event(r.Context(), eventRejected, "missing")
			writeProblem(w, http.StatusBadRequest, "This request requires an Idempotency-Key header.")
			return
		}
		h.next.ServeHTTP(w, r)
		return
	}
	key, err := ParseKey(vs, g.c.bare, g.c.maxKeyLen)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, ErrKeyTooLong) {
			reason = "too_long"
		}
		g.tel.event(r.Context(), eventRejected, reason)
		writeProblem(w, http.StatusBadRequest, "Invalid Idempotency-Key header: "+err.Error()+".")
		return
	}
	if r.ContentLength > g.c.maxBody {
		g.tel.event(r.Context(), eventRejected, "body_too_large")
		writeProblem(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("A request with an Idempotency-Key may have a body of at most %d bytes.", g.c.maxBody))
		return
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		body, err = io.ReadAll(io.LimitReader(r.Body, g.c.maxBody+1))
		if err != nil {
			g.tel.event(r.Context(), eventRejected, "body_unreadable")
			writeProblem(w, http.StatusBadRequest, "The request body could not be read.")
			return
		}
		if int64(len(body)) > g.c.maxBody {
			g.tel.event(r.Context(), eventRejected, "body_too_large")
			writeProblem(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("A request with an Idempotency-Key may have a body of at most %d bytes.", g.c.maxBody))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	fp := h.fingerprint(r, body)
	res, err := g.Run(r.Context(), h.principal(r), key, fp, func(context.Context) ([]byte, Outcome) {
		// What outer middleware set for this request is not the
		// handler's response, and is not recorded.
		rec := &recorder{ResponseWriter: w, max: g.c.maxResponse}
		if wh := w.Header(); len(wh) > 0 {
			rec.pre = wh.Clone()
		}
		h.next.ServeHTTP(rec, r)
		return rec.result()
	})
	switch {
	case err == nil && res.Replayed:
		if err := replay(w, res.Response); err != nil {
			g.tel.storeError(r.Context(), "decode", err)
			writeProblem(w, http.StatusServiceUnavailable, "The recorded response could not be read.")
		}
	case err == nil:
		// The handler wrote the response.
	case errors.Is(err, ErrInFlight):
		ra := time.Second
		if ife := (*InFlightError)(nil); errors.As(err, &ife) {
			ra = ife.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.FormatInt(wholeSeconds(ra), 10))
		writeProblem(w, http.StatusConflict, "A request with this Idempotency-Key is being processed; retry later.")
	case errors.Is(err, ErrMismatch):
		writeProblem(w, http.StatusUnprocessableEntity, "This Idempotency-Key was used for a different request.")
	case errors.Is(err, ErrStore):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, storeProblem(err))
	default:
		// The client went away (its context ended) before the request
		// could be reserved: nobody reads an answer.
		writeProblem(w, http.StatusServiceUnavailable, "The request was canceled.")
	}
}

// storeProblem says, for a client, what failed when the store could not
// reserve a key: whether the store is full, did not answer in time, or
// failed otherwise. The store's own error (addresses, internals) stays in
// the server's telemetry.
func storeProblem(err error) string {
	why := "the idempotency store is unavailable"
	var ne net.Error
	switch {
	case errors.Is(err, ErrStoreFull):
		why = "the idempotency store is full"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		why = "the idempotency store is unavailable (it did not answer in time)"
	}
	return "The request was not run: its Idempotency-Key could not be checked, because " + why + ". Retry later."
}

// wholeSeconds returns d in whole seconds, rounded up, at least 1.
func wholeSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

func (h *handler) principal(r *http.Request) string {
	switch {
	case h.g.c.principal != nil:
		return h.g.c.principal(r)
	case h.g.c.ctxPrincipal != nil:
		return h.g.c.ctxPrincipal(r.Context())
	}
	return r.Header.Get("Authorization")
}

func (h *handler) fingerprint(r *http.Request, body []byte) string {
	if h.g.c.fingerprint != nil {
		return h.g.c.fingerprint(r, body)
	}
	d := sha256.New()
	d.Write([]byte(r.Method))
	d.Write([]byte{0})
	d.Write([]byte(r.URL.RequestURI()))
	d.Write([]byte{0})
	d.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(d.Sum(sum[:0]))
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	b, _ := json.Marshal(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// recorder passes a response to the client and records it, up to max
// bytes of body.
type recorder struct {
	http.ResponseWriter
	max      int
	pre      http.Header // the header before the handler ran
	status   int
	header   http.Header // as it was when the status was written
	body     bytes.Buffer
	over     bool
	hijacked bool
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status != 0 {
		rec.ResponseWriter.WriteHeader(code) // net/http logs the superfluous call
		return
	}
	if code >= 100 && code < 200 {
		// Informational: sent, not recorded.
		rec.ResponseWriter.WriteHeader(code)
		return
	}
	rec.status = code
	rec.header = rec.ResponseWriter.Header().Clone()
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if !rec.over {
		if rec.body.Len()+len(p) > rec.max {
			rec.over = true
			rec.body = bytes.Buffer{}
		} else {
			rec.body.Write(p)
		}
	}
	return rec.ResponseWriter.Write(p)
}

// Flush lets handlers that stream flush through the recorder.
func (rec *recorder) Flush() {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(rec.ResponseWriter).Flush()
}

// Hijack hands the connection to the handler; what it writes there cannot
// be recorded, so the key is released.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rec.hijacked = true
	return http.NewResponseController(rec.ResponseWriter).Hijack()
}

// Unwrap gives http.ResponseController the underlying writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

func (rec *recorder) result() ([]byte, Outcome) {
	if rec.status == 0 {
		// Nothing written: net/http answers 200 with no body.
		rec.status = http.StatusOK
		rec.header = rec.ResponseWriter.Header().Clone()
	}
	switch {
	case rec.status >= 500, rec.hijacked:
		return nil, Release
	case notProcessed(rec.status):
		return nil, NotProcessed
	case rec.over:
		return nil, TooLarge
	}
	declared, trailer := trailers(rec.header, rec.ResponseWriter.Header())
	return encodeResponse(rec.status, recordedHeader(rec.header, rec.pre, declared), rec.body.Bytes(), trailer), Record
}

// trailers returns the trailer fields declared in h, the header as the
// status was written, and the trailers of the response, taken from final,
// the header after the handler returned: the declared fields' values, and
// the fields named with http.TrailerPrefix (kept with their prefix).
func trailers(h, final http.Header) (declared map[string]bool, trailer http.Header) {
	for _, v := range h["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				if declared == nil {
					declared = make(map[string]bool)
				}
				declared[http.CanonicalHeaderKey(name)] = true
			}
		}
	}
	for k, vs := range final {
		if declared[k] || strings.HasPrefix(k, http.TrailerPrefix) {
			if trailer == nil {
				trailer = make(http.Header)
			}
			trailer[k] = vs
		}
	}
	return declared, trailer
}

// notProcessed reports whether status says that the request was turned
// away before it was processed, and may be sent again: such an answer is
// not recorded.
func notProcessed(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return false
}

// recordedHeader returns the fields of h the handler set: those not in pre
// (set by outer middleware for this request, which sets them again for
// every repeat), and never the RateLimit fields, which describe a quota as
// it was when the response was sent.
func recordedHeader(h, pre http.Header, trailers map[string]bool) http.Header {
	keep := func(k string, vs []string) bool {
		if k == rateLimitHeader || k == rateLimitPolicyHeader || trailers[k] || strings.HasPrefix(k, http.TrailerPrefix) {
			return false
		}
		old, ok := pre[k]
		return !ok || !slices.Equal(old, vs)
	}
	all := true
	for k, vs := range h {
		if !keep(k, vs) {
			all = false
			break
		}
	}
	if all {
		return h // h is the recorder's own copy
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		if keep(k, vs) {
			out[k] = vs
		}
	}
	return out
}

// The fields of draft-ietf-httpapi-ratelimit-headers, in canonical form.
const (
	rateLimitHeader       = "Ratelimit"
	rateLimitPolicyHeader = "Ratelimit-Policy"
)

// The record of an HTTP response: a version byte, then uvarints and
// length-prefixed strings: status, the header fields (their number, then
// each field's name, number of values and values), the body, and, from
// version 2 on, the trailer fields as the header fields. Version 1 records
// (no trailers) are still read.
const recordVersion = 2

func encodeResponse(status int, h http.Header, body []byte, trailer http.Header) []byte {
	b := make([]byte, 0, 64+len(body))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(status))
	b = appendFields(b, h)
	b = appendString(b, string(body))
	return appendFields(b, trailer)
}

func appendFields(b []byte, h http.Header) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	for k, vs := range h {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadRecord = errors.New("idempotency: malformed record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errBadRecord
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func decodeResponse(rec []byte) (status int, h http.Header, body []byte, trailer http.Header, err error) {
	if len(rec) == 0 || (rec[0] != 1 && rec[0] != recordVersion) {
		return 0, nil, nil, nil, errBadRecord
	}
	d := &decoder{b: rec[1:]}
	status = int(d.uvarint())
	h = d.fields()
	body = d.bytes()
	if rec[0] >= 2 {
		trailer = d.fields()
	}
	if d.err != nil || len(d.b) != 0 || status < 200 || status > 999 {
		return 0, nil, nil, nil, errBadRecord
	}
	return status, h, body, trailer, nil
}

func (d *decoder) fields() http.Header {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errBadRecord
		return nil
	}
	if n == 0 {
		return nil
	}
	h := make(http.Header, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := string(d.bytes())
		nv := d.uvarint()
		if nv > uint64(len(d.b)) {
			d.err = errBadRecord
			return nil
		}
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv && d.err == nil; j++ {
			vs = append(vs, string(d.bytes()))
		}
		h[k] = vs
	}
	return h
}

// replay writes a recorded response.
func replay(w http.ResponseWriter, rec []byte) error {
	status, h, body, trailer, err := decodeResponse(rec)
	if err != nil {
		return err
	}
	wh := w.Header()
	for k, vs := range h {
		// A field already set was set for this request by an outer
		// middleware (a rate limiter's RateLimit, a request id): it wins
		// over the recorded one.
		if _, ok := wh[k]; !ok {
			wh[k] = vs
		}
	}
	wh.Set(ReplayedHeader, "true")
	w.WriteHeader(status)
	w.Write(body) // an error means the client went away
	// Declared trailers (named in the replayed Trailer field) and
	// TrailerPrefix ones are sent by net/http once the handler returns.
	for k, vs := range trailer {
		wh[k] = vs
	}
	return nil
}
