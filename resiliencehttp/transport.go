package resiliencehttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/net/http/httpguts"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
)

const (
	// DefaultMaxBodyBuffer is the default for [Transport.MaxBodyBuffer].
	DefaultMaxBodyBuffer = 1 << 20
	// MaxDrain is how many bytes of a discarded response body are read
	// before it is closed, so that its connection can be reused. A longer
	// body is closed unread and its connection dropped.
	MaxDrain = 16 << 10
	// MaxDrainTime bounds how long draining a discarded response body may
	// delay the next attempt. A body that has not reached its end by then
	// (a server that stalls after a few bytes) is closed and its
	// connection dropped.
	MaxDrainTime = 50 * time.Millisecond
)

// Transport is an http.RoundTripper that runs each request under a
// [resilience.Policy]. Build it with [NewTransport] or as a literal; it is
// safe for concurrent use. Its fields must not change once it is in use.
type Transport struct {
	// Base sends each attempt. Nil means http.DefaultTransport.
	Base http.RoundTripper
	// Policy runs each request. Nil means the request is sent once,
	// through Base, unchanged.
	Policy resilience.Policy
	// MaxBodyBuffer bounds how many bytes of a request body that has no
	// GetBody are kept in memory to replay it. A larger body is sent once
	// and not retried. Zero means DefaultMaxBodyBuffer (1 MiB); a negative
	// value disables buffering.
	MaxBodyBuffer int64
}

// NewTransport returns a Transport that sends requests through base (nil
// means http.DefaultTransport) under the given policies, composed with
// resilience.Chain: policies[0] is the outermost.
func NewTransport(base http.RoundTripper, policies ...resilience.Policy) *Transport {
	t := &Transport{Base: base}
	if len(policies) > 0 {
		t.Policy = resilience.Chain(policies...)
	}
	return t
}

// StatusError is how an attempt that received a failed response (a 408,
// 429, 4xx or 5xx) reports it to the policies. The transport hands the
// response itself back to the caller, so callers of RoundTrip never see it;
// policies in the chain do, and may inspect the response's status and
// headers (not its body).
type StatusError struct {
	Response *http.Response
	// Title and Detail are the problem details (RFC 9457) of a response
	// of type application/problem+json whose body, of a known length, is
	// at most MaxProblem bytes: the server's reason for the failure, such
	// as the idempotency middleware's "Idempotency keys cannot be checked
	// right now". They are empty otherwise. The response body is still
	// read in full by the caller.
	Title, Detail string
}

// MaxProblem bounds the body of a failed response that the transport reads
// for its problem details ([StatusError.Detail]).
const MaxProblem = 4 << 10

// maxProblemText bounds the problem's title and detail kept in an error.
const maxProblemText = 256

func (e *StatusError) Error() string {
	msg := "resiliencehttp: " + e.Response.Status
	title := e.Title
	if title == http.StatusText(e.Response.StatusCode) {
		title = "" // adds nothing to the status
	}
	switch {
	case title != "" && e.Detail != "":
		msg += ": " + title + ": " + e.Detail
	case title != "" || e.Detail != "":
		msg += ": " + title + e.Detail
	}
	return msg
}

// ErrorType returns the response's status code ("503"), the value of the
// OpenTelemetry error.type attribute that the policies record for it.
func (e *StatusError) ErrorType() string { return strconv.Itoa(e.Response.StatusCode) }

// ErrBodyNotReplayable is the reason a request is not retried when its body
// has no GetBody and is larger than [Transport.MaxBodyBuffer].
var ErrBodyNotReplayable = errors.New("resiliencehttp: request body cannot be replayed (no GetBody, larger than MaxBodyBuffer)")

// errNoResponse reports a policy that returned no error without a
// successful attempt, which would break the RoundTripper contract.
var errNoResponse = errors.New("resiliencehttp: the policy returned no error, but no attempt produced a response")

// RoundTrip sends req under the transport's policy. It implements
// http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if err := validate(req); err != nil {
		if req != nil && req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if t.Policy == nil {
		return base.RoundTrip(req)
	}
	rt := roundTrip{base: base, req: req, body: req.Body, getBody: req.GetBody}
	call := resilience.Call{
		Target:     target(req.URL),
		Method:     req.Method,
		Idempotent: isIdempotent(req),
	}
	if call.Method == "" {
		call.Method = http.MethodGet
	}
	if call.Idempotent {
		if err := rt.prepareReplay(t.maxBodyBuffer(), &call); err != nil {
			return nil, err
		}
	} else {
		noReplay(req, &call) // see idempotency.go
	}
	err := resilience.DoCall(req.Context(), t.Policy, call, &rt)
	if rt.upgrades != nil {
		rt.endUpgrades(err)
	}
	if !rt.bodySent.Load() && rt.body != nil {
		rt.body.Close()
	}
	if err == nil {
		if rt.last == nil {
			// A policy swallowed a failure, or never ran the request.
			return nil, errNoResponse
		}
		return rt.last, nil
	}
	var se *StatusError
	if rt.last != nil && errors.As(err, &se) && se.Response == rt.last && !discarded(rt.last) {
		return withPolicyError(rt.last, rt.req, err), nil
	}
	return nil, err
}

type policyErrorKey struct{}

// withPolicyError records in resp, through its Request's context, the error
// with which the policy ended the call, for PolicyError. It costs a copy of
// the request, on the failure path only.
func withPolicyError(resp *http.Response, req *http.Request, err error) *http.Response {
	if resp.Request != nil {
		req = resp.Request
	}
	resp.Request = req.WithContext(context.WithValue(req.Context(), policyErrorKey{}, err))
	return resp
}

// PolicyError returns the error with which the transport's policy ended a
// call whose last response RoundTrip returned, as net/http would have, with
// a nil error: a failed response (a 503, a 429) that was not retried, or
// retried until the policy gave up. It is nil for a response the policy
// accepted, and for one that did not come from a Transport.
//
// It tells a caller why a failed response was not retried:
// errors.Is(err, ErrBodyNotReplayable) for a request whose body could not
// be replayed (no GetBody, larger than MaxBodyBuffer), errors.As with a
// *retry.Error for the number of attempts and the reason
// (retry.ErrExhausted, ...). The retry policy also records the reason on
// the call's span, in its resilience.retry.exhausted event.
func PolicyError(resp *http.Response) error {
	if resp == nil || resp.Request == nil {
		return nil
	}
	err, _ := resp.Request.Context().Value(policyErrorKey{}).(error)
	return err
}

func (t *Transport) maxBodyBuffer() int64 {
	if t.MaxBodyBuffer == 0 {
		return DefaultMaxBodyBuffer
	}
	return t.MaxBodyBuffer
}

// roundTrip is the state of one RoundTrip call across its attempts.
type roundTrip struct {
	base     http.RoundTripper
	req      *http.Request
	body     io.ReadCloser                 // for the first attempt to send
	bodySent atomic.Bool                   // body was handed to base, which closes it
	getBody  func() (io.ReadCloser, error) // for later attempts
	last     *http.Response                // the latest attempt's response, or the kept one's when attempts run in parallel

	mu       sync.Mutex      // guards upgrades
	upgrades []*upgradedConn // responses that switched protocols (101), held until the call ends

	// The first attempt's request and response body, which need no
	// allocation of their own: only the first attempt uses them.
	firstReq  http.Request
	firstBody heldBody
}

// prepareReplay arranges for the request body to be sent on every attempt,
// or records in call why it cannot be.
func (rt *roundTrip) prepareReplay(limit int64, call *resilience.Call) error {
	req := rt.req
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return nil
	}
	if limit < 0 || req.ContentLength > limit {
		call.NoRetry = ErrBodyNotReplayable
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		req.Body.Close()
		return fmt.Errorf("resiliencehttp: reading request body: %w", err)
	}
	if int64(len(buf)) > limit {
		// Too large: send what was read followed by the rest, once.
		rt.body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		call.NoRetry = ErrBodyNotReplayable
		return nil
	}
	req.Body.Close()
	if req.ContentLength > 0 && int64(len(buf)) != req.ContentLength {
		return fmt.Errorf("resiliencehttp: Request.ContentLength is %d but the Body has %d bytes", req.ContentLength, len(buf))
	}
	rt.getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	rt.body, _ = rt.getBody()
	return nil
}

// Run sends one attempt of the request with ctx and classifies the result
// for the policies.
func (rt *roundTrip) Run(ctx context.Context) error {
	first := !rt.bodySent.Swap(true)
	var r *http.Request
	if first {
		// The first attempt's copy of the request lives in rt, which
		// outlives it: one allocation fewer per call.
		rt.firstReq = *rt.req.WithContext(ctx)
		r = &rt.firstReq
	} else {
		r = rt.req.WithContext(ctx)
	}
	switch {
	case first:
		r.Body = rt.body
	case rt.getBody != nil:
		body, err := rt.getBody()
		if err != nil {
			return resilience.Mark(fmt.Errorf("resiliencehttp: GetBody: %w", err), resilience.KindPermanent)
		}
		r.Body = body
	}
	r.GetBody = rt.getBody
	stampKey(ctx, r)
	var lc *lengthCheck
	if r.ContentLength > 0 && r.Body != nil && r.Body != http.NoBody {
		// A body shorter than its ContentLength is the caller's bug, but
		// net/http may report it as a broken connection when the server
		// answers first: tell the two apart by counting.
		lc = &lengthCheck{rc: r.Body, want: r.ContentLength}
		r.Body = lc
	}
	resp, err := rt.base.RoundTrip(r)
	if err != nil {
		rt.setLast(ctx, nil)
		if lc != nil && lc.short.Load() {
			return resilience.Mark(fmt.Errorf("resiliencehttp: request body shorter than its ContentLength (%d): %w", r.ContentLength, err), resilience.KindRejected)
		}
		return classifyError(err)
	}
	kind := classifyStatus(resp.StatusCode)
	var title, detail string
	if kind != resilience.KindSuccess {
		title, detail = readProblem(resp)
	}
	if _, ok := resp.Body.(io.Writer); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// A switched protocol: the body is the connection, passed on
		// untouched (see upgraded).
		rt.upgraded(ctx, resp)
	} else if resp.Body != nil && resp.Body != http.NoBody {
		var hb *heldBody
		if first {
			hb = &rt.firstBody // as firstReq
		} else {
			hb = new(heldBody)
		}
		hb.rc = resp.Body
		hb.held = resilience.HoldWith(ctx, (*bodyDiscarder)(hb))
		resp.Body = hb
	}
	rt.setLast(ctx, resp)
	if d, ok := rateLimitPause(resp.Header); ok && d > 0 {
		// No quota left: whatever this answer, the next calls to the
		// host would be refused until d passes.
		resilience.ReportPushback(ctx, d)
	}
	if kind == resilience.KindSuccess {
		return nil
	}
	se := &StatusError{Response: resp, Title: title, Detail: detail}
	keyed := r.Header.Get(idempotency.HeaderName) != "" || r.Header.Get("X-Idempotency-Key") != ""
	d, hasDelay := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if keyed && hasDelay && resp.StatusCode == http.StatusConflict {
		// The server still runs an earlier attempt of this call, under
		// the same key: ask again with the key once it asks.
		return resilience.MarkScopedRetryAfter(se, resilience.KindThrottled, d, resilience.PushbackCall)
	}
	if kind.Retryable() && hasDelay {
		return resilience.MarkScopedRetryAfter(se, kind, d, pushbackScope(resp.StatusCode, keyed))
	}
	return resilience.Mark(se, kind)
}

// pushbackScope says what a failed response's Retry-After concerns; see
// the package documentation. Every answer is about its request (a 429 for
// a tenant's or an endpoint's quota, a 503 from a server shedding part of
// its load), and the host's state is the share of such answers, except a
// 503 to a request with an idempotency key: the server's idempotency layer
// answers 503 when its store is down, to the keyed requests alone, while
// it serves every request without a key, so that answer counts for the
// call alone.
func pushbackScope(code int, keyed bool) resilience.PushbackScope {
	if code == http.StatusServiceUnavailable && keyed {
		return resilience.PushbackCall
	}
	return resilience.PushbackRequest
}

// readProblem reads the problem details (RFC 9457) of a failed response
// of type application/problem+json with a body of at most MaxProblem
// bytes, and puts the bytes read back in front of the body, for the
// caller. It returns empty strings for any other response, or a body
// that is not a problem object.
func readProblem(resp *http.Response) (title, detail string) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" || resp.ContentLength <= 0 || resp.ContentLength > MaxProblem ||
		resp.Body == nil || resp.Body == http.NoBody {
		return "", ""
	}
	buf := make([]byte, resp.ContentLength)
	n, _ := io.ReadFull(resp.Body, buf)
	buf = buf[:n]
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(buf, &p) != nil {
		return "", ""
	}
	return cleanText(p.Title), cleanText(p.Detail)
}

// cleanText bounds a server's text for an error message and drops its
// control characters.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxProblemText {
		s = strings.ToValidUTF8(s[:maxProblemText], "") + "…"
	}
	return strings.TrimSpace(s)
}

// setLast records the response of the attempt in ctx as the call's. When
// attempts run in parallel (hedging), only the one the policy keeps is.
func (rt *roundTrip) setLast(ctx context.Context, resp *http.Response) {
	if resilience.Parallel(ctx) {
		resilience.OnKeep(ctx, func() { rt.last = resp })
		return
	}
	rt.last = resp
}

// classifyStatus maps a response status to its outcome; see the package
// documentation.
func classifyStatus(code int) resilience.Kind {
	switch {
	case code == http.StatusRequestTimeout,
		code == http.StatusInternalServerError,
		code == http.StatusBadGateway,
		code == http.StatusServiceUnavailable,
		code == http.StatusGatewayTimeout:
		return resilience.KindTransient
	case code == http.StatusTooManyRequests:
		return resilience.KindThrottled
	case code >= 500:
		return resilience.KindPermanent
	case code >= 400:
		return resilience.KindRejected
	}
	return resilience.KindSuccess
}

// classifyError marks the transport errors that no retry can fix as
// permanent; the rest stay transient (and context errors keep their
// meaning).
func classifyError(err error) error {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
	)
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) {
		return resilience.Mark(err, resilience.KindPermanent)
	}
	// net/http reports these with untyped errors. A request it refuses
	// to send is the caller's bug, not the dependency's failure: never
	// retried, never counted by a breaker.
	if callerBug(err.Error()) {
		return resilience.Mark(err, resilience.KindRejected)
	}
	return err
}

// callerBug reports whether msg is the error of a request net/http refuses
// to send as built: an unsupported scheme, an invalid method or header, a
// body that does not match its ContentLength.
func callerBug(msg string) bool {
	for _, p := range [...]string{
		"net/http: invalid",
		"unsupported protocol scheme",
		"http: nil Request.",
		"http: ContentLength=",
		"http: Request.ContentLength=",
		"net/http: can't write control character",
	} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// validate rejects a request that no attempt could send, with a clear
// error, before any policy runs: a caller's bug never reaches a breaker.
func validate(req *http.Request) error {
	switch {
	case req == nil:
		return errors.New("resiliencehttp: nil Request")
	case req.URL == nil:
		return errors.New("resiliencehttp: nil Request.URL")
	case req.Header == nil:
		return errors.New("resiliencehttp: nil Request.Header (use http.NewRequest, or set Header to http.Header{})")
	case req.ContentLength > 0 && (req.Body == nil || req.Body == http.NoBody):
		return fmt.Errorf("resiliencehttp: Request.ContentLength is %d with no Body", req.ContentLength)
	case req.URL.Host == "":
		return fmt.Errorf("resiliencehttp: no host in request URL %q", req.URL.Redacted())
	case req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method):
		return fmt.Errorf("resiliencehttp: invalid method %q", req.Method)
	}
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("resiliencehttp: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("resiliencehttp: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// isIdempotent reports whether req may be sent more than once.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// target returns the host:port the request goes to, with the scheme's
// default port made explicit, so that "example.com" and "example.com:443"
// share per-host policies.
func target(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	switch u.Scheme {
	case "https":
		return net.JoinHostPort(u.Hostname(), "443")
	case "http":
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}

// heldBody keeps the attempt's resources until the body is read to the end
// or closed.
type heldBody struct {
	rc        io.ReadCloser
	held      resilience.Holding
	discarded atomic.Bool // by a policy
}

// bodyDiscarder is a heldBody as the policies see it, so that they can
// discard it (resilience.HoldWith); a type of its own, so that the body
// the caller reads shows no Discard method.
type bodyDiscarder heldBody

func (d *bodyDiscarder) Discard() { (*heldBody)(d).discard() }

// discarded reports whether a policy threw resp away (a retry drains a
// failed attempt's response before its wait, and may then find no time for
// another attempt): its body is gone, so the caller gets the policy's error
// instead.
func discarded(resp *http.Response) bool {
	hb, ok := resp.Body.(*heldBody)
	return ok && hb.discarded.Load()
}

func (b *heldBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		if err == io.EOF {
			b.held.Done(nil)
		} else {
			b.held.Done(err)
		}
	}
	return n, err
}

func (b *heldBody) Close() error {
	err := b.rc.Close()
	b.held.Done(nil)
	return err
}

// discard drains a little of the body, so that its connection can be
// reused, and closes it. Draining stops after MaxDrain bytes or
// MaxDrainTime, whichever comes first: closing the body ends a read in
// progress, as net/http's response bodies allow.
func (b *heldBody) discard() {
	b.discarded.Store(true)
	t := time.AfterFunc(MaxDrainTime, func() { b.rc.Close() })
	io.CopyN(io.Discard, b.rc, MaxDrain)
	t.Stop()
	b.rc.Close()
}

// upgraded holds the connection of a response that switched protocols
// (101: net/http returns a body that is also an io.Writer, for WebSockets
// and h2c) while the call runs, so that a policy that throws the attempt
// away (a retry, a losing hedge) closes it. The body itself is passed on
// untouched: wrapped, it would lose its Write and CloseWrite.
func (rt *roundTrip) upgraded(ctx context.Context, resp *http.Response) {
	u := &upgradedConn{resp: resp}
	u.held = resilience.HoldWith(ctx, u)
	rt.mu.Lock()
	rt.upgrades = append(rt.upgrades, u)
	rt.mu.Unlock()
}

// endUpgrades ends the call's switched connections once its policies
// returned err: the call ends with the switch, as the HTTP exchange does.
// What the attempt took (a bulkhead slot, the timeouts' contexts) is
// released now, not when the caller closes the connection, which may be
// hours later; net/http, too, stops watching the request's context for it.
// A connection that is not the call's response is closed.
func (rt *roundTrip) endUpgrades(err error) {
	rt.mu.Lock()
	us := rt.upgrades
	rt.upgrades = nil
	rt.mu.Unlock()
	for _, u := range us {
		if err != nil || u.resp != rt.last {
			u.resp.Body.Close()
		}
		u.held.Done(nil)
	}
}

// upgradedConn is a switched connection held while its call runs.
type upgradedConn struct {
	resp *http.Response
	held resilience.Holding
}

// Discard closes the connection of an attempt a policy threw away.
func (u *upgradedConn) Discard() { u.resp.Body.Close() }

// lengthCheck passes a request body through and notes whether it ended
// before its ContentLength.
type lengthCheck struct {
	rc    io.ReadCloser
	want  int64
	n     int64
	short atomic.Bool
}

func (l *lengthCheck) Read(p []byte) (int, error) {
	n, err := l.rc.Read(p)
	l.n += int64(n)
	if err == io.EOF && l.n < l.want {
		l.short.Store(true)
	}
	return n, err
}

func (l *lengthCheck) Close() error { return l.rc.Close() }
