package redisrate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/internal/keyed"
	"github.com/resilience-go/resilience/ratelimit"
)

// gcra takes up to ARGV[3] requests' worth of a key's quota, by the generic
// cell rate algorithm: the key's state is its theoretical arrival time
// (TAT), in microseconds of Redis's own clock, after which its quota is
// whole again. A request may go when TAT - now <= window - interval.
//
// KEYS[1]: the key's state. ARGV[1]: interval (µs per request), ARGV[2]:
// window (µs, interval × limit), ARGV[3]: requests wanted (1, or a lease).
// Returns {granted, remaining, retry after µs, reset µs}.
var gcra = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local n = math.min(want, math.floor((now + window - tat) / interval))
if n < 1 then
	return {0, 0, tat + interval - window - now, tat - now}
end
tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
local left = math.floor((now + window - tat) / interval)
local retry = 0
if left < 1 then retry = tat + interval - window - now end
return {n, left, retry, tat - now}
`)

// heartbeat records a replica as alive in a sorted set scored by Redis
// time, drops the replicas not seen for ARGV[2] ms, and counts the rest.
var heartbeat = redis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
`)

// Limiter is a ratelimit.Admitter that shares a quota between the replicas
// of a service through Redis. Build it with [New]; it is safe for
// concurrent use and starts no goroutine. The zero Limiter is not usable:
// it has no client and no quota, and its Admit returns an error matching
// ratelimit.ErrUnavailable (503 from ratelimit.Middleware).
//
// In the exact mode, the default, every decision is one Lua script run by
// Redis (GCRA on Redis's clock), so the replicas together admit the quota
// exactly. With [WithLease] each replica takes slices of the quota and
// spends them locally. While Redis cannot be reached, [WithMode] decides.
type Limiter struct {
	client    redis.Scripter
	q         ratelimit.Quota
	prefix    string
	interval  int64  // µs
	window    int64  // µs
	args      [2]any // interval and window, boxed once for the script calls
	mode      Mode
	replicas  int
	probe     time.Duration
	heartbeat time.Duration
	lease     int64
	leaseAge  time.Duration
	maxKeys   int
	id        string
	now       func() time.Time
	tel       *telemetryState

	learned   atomic.Int64 // replicas seen in Redis, 0 before the first heartbeat
	nextBeat  atomic.Int64 // unix ns of the next heartbeat
	down      atomic.Bool  // Redis is unreachable
	nextProbe atomic.Int64 // unix ns after which a request tries Redis again

	// The Degrade mode's share: set up by the first decision taken
	// without Redis, kept across outages (so that a flapping Redis does
	// not hand out a fresh share each time), and dropped once a window
	// has passed since its last decision, when every bucket in it is full.
	local     atomic.Pointer[ratelimit.Local]
	lastLocal atomic.Int64            // unix ns of the share's last decision
	leases    *keyed.Registry[*lease] // nil in the exact mode
	batch     *batcher                // nil if the client cannot pipeline
}

// errZeroLimiter is the error of a zero Limiter.
var errZeroLimiter = fmt.Errorf("%w: the zero redisrate.Limiter is not usable: build it with New", ratelimit.ErrUnavailable)

// New returns a limiter of quota q sharing its state through client, a
// *redis.Client, *redis.ClusterClient or *redis.Ring. It panics if q is
// invalid (ratelimit.Quota.Validate), if q allows more than one request per
// microsecond, or if an option's value is invalid.
//
// Configure client for the outage you expect: its dial and read timeouts
// and its retries (MaxRetries, DialerRetries) bound how long a request
// waits before the limiter falls back to its [Mode]; go-redis honours a
// context's deadline only with ContextTimeoutEnabled.
//
// The state of key is kept at prefix + quota name + ":{" + key + "}" (a key
// longer than ratelimit.MaxKeyLen or holding braces is replaced by its
// SHA-256 digest), and expires once the key's quota is whole again; the
// replicas' heartbeats at prefix + quota name + ":replicas".
func New(client redis.Scripter, q ratelimit.Quota, opts ...Option) *Limiter {
	if client == nil {
		panic("redisrate: New: client is nil")
	}
	if err := q.Validate(); err != nil {
		panic("redisrate: New: " + strings.TrimPrefix(err.Error(), "ratelimit: "))
	}
	if strings.ContainsAny(q.Name, "{}") {
		panic(fmt.Sprintf("redisrate: New: the quota name must not contain braces, got %q", q.Name))
	}
	interval := q.Interval().Microseconds()
	if interval < 1 {
		panic(fmt.Sprintf("redisrate: New: quota %q allows more than one request per microsecond", q.Name))
	}
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	if err := c.validate(); err != nil {
		panic("redisrate: " + err.Error())
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	l := &Limiter{
		client: client, q: q, prefix: c.prefix + q.Name + ":",
		interval: interval, window: interval * q.Limit,
		mode: c.mode, replicas: c.replicas, probe: c.probe, heartbeat: c.heartbeat,
		lease: c.lease, leaseAge: c.leaseAge, maxKeys: c.maxKeys,
		id: hex.EncodeToString(id[:]), now: time.Now,
		tel: newTelemetry(&c),
	}
	l.args = [2]any{l.interval, l.window}
	if p, ok := client.(interface{ Pipeline() redis.Pipeliner }); ok {
		l.batch = &batcher{l: l, p: p}
	}
	if l.lease > 0 {
		l.leases = keyed.New(c.maxKeys, max(c.leaseAge, q.Window), func(string) *lease { return new(lease) })
	}
	return l
}

// Quota returns the limiter's quota.
func (l *Limiter) Quota() ratelimit.Quota { return l.q }

// Replicas returns the number of replicas the limiter would divide the
// quota by during an outage: the number set with [WithReplicas], or else
// the number last learned from Redis (at least 1).
func (l *Limiter) Replicas() int {
	if l.replicas > 0 {
		return l.replicas
	}
	return int(max(l.learned.Load(), 1))
}

// redisKey returns the Redis key of key's state. Keys that are long or hold
// braces, which would change the Cluster hash tag, are stored as a digest.
func (l *Limiter) redisKey(key string) string {
	if len(key) > ratelimit.MaxKeyLen || strings.ContainsAny(key, "{}") {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return l.prefix + "{" + key + "}"
}

// Admit takes one request's worth of key's quota, if there is any. While
// Redis cannot be reached it decides by the limiter's [Mode]: it returns an
// error (matching ratelimit.ErrUnavailable) only in the FailClosed mode
// (or for a zero Limiter), or the caller's ctx.Err() if ctx is done.
func (l *Limiter) Admit(ctx context.Context, key string) (ratelimit.Decision, error) {
	if l.client == nil {
		return ratelimit.Decision{}, errZeroLimiter
	}
	now := l.now()
	if l.down.Load() && !l.probeDue(now) {
		return l.fallback(ctx, now, key)
	}
	var (
		d   ratelimit.Decision
		err error
	)
	if l.leases != nil {
		d, err = l.admitLeased(ctx, key)
	} else {
		var g grant
		g, err = l.take(ctx, key, 1)
		d = g.decision(l.q)
	}
	if err == nil {
		l.up(ctx, now)
		return d, nil
	}
	if ctx.Err() != nil {
		return ratelimit.Decision{}, ctx.Err()
	}
	now = l.now() // the failed call may have waited for its timeouts
	l.failed(ctx, now, err)
	return l.fallback(ctx, now, key)
}

// probeDue reports whether this request is the one that tries Redis again.
func (l *Limiter) probeDue(now time.Time) bool {
	next := l.nextProbe.Load()
	return now.UnixNano() >= next && l.nextProbe.CompareAndSwap(next, now.Add(l.probe).UnixNano())
}

// up is called after Redis answered: it ends an outage, and records the
// replica's heartbeat when one is due.
func (l *Limiter) up(ctx context.Context, now time.Time) {
	if l.down.Load() && l.down.CompareAndSwap(true, false) {
		l.tel.recovered(ctx)
	}
	// The share outlives the outage: the next outage within the window
	// goes on from what is left of it. A window after its last decision
	// every bucket in it is full again, and a new share (from the replica
	// count known then) is the same but for its memory.
	if loc := l.local.Load(); loc != nil && now.UnixNano()-l.lastLocal.Load() >= int64(l.q.Window) {
		l.local.CompareAndSwap(loc, nil)
	}
	if l.replicas > 0 || l.mode != Degrade {
		return
	}
	next := l.nextBeat.Load()
	if now.UnixNano() < next || !l.nextBeat.CompareAndSwap(next, now.Add(l.heartbeat).UnixNano()) {
		return
	}
	ttl := 3 * l.heartbeat.Milliseconds()
	if n, err := heartbeat.Run(ctx, l.client, []string{l.prefix + "replicas"}, l.id, max(ttl, 1)).Int64(); err == nil && n > 0 {
		l.learned.Store(n)
	}
}

// failed is called when Redis could not be reached.
func (l *Limiter) failed(ctx context.Context, now time.Time, err error) {
	l.tel.storeError(ctx, err)
	l.nextProbe.Store(now.Add(l.probe).UnixNano())
	l.down.Store(true)
}

// fallback decides without Redis.
func (l *Limiter) fallback(ctx context.Context, now time.Time, key string) (ratelimit.Decision, error) {
	l.tel.fallback(ctx, l.mode)
	switch l.mode {
	case FailOpen:
		return ratelimit.Decision{Allowed: true}, nil
	case FailClosed:
		return ratelimit.Decision{}, fmt.Errorf("%w: redis unreachable", ratelimit.ErrUnavailable)
	}
	// Noted before the share is read, so that a Redis answer racing with
	// this decision does not drop the share it uses (up). A share dropped
	// all the same had been idle for a window: its buckets were full.
	if n := now.UnixNano(); l.lastLocal.Load() < n {
		l.lastLocal.Store(n)
	}
	loc := l.local.Load()
	if loc == nil {
		// The first decision without Redis sets up this replica's share,
		// from the replica count known now.
		share := max(l.q.Limit/int64(l.Replicas()), 1)
		l.local.CompareAndSwap(nil, ratelimit.NewLocal(ratelimit.Quota{Name: l.q.Name, Limit: share, Window: l.q.Window},
			ratelimit.WithMaxKeys(l.maxKeys), ratelimit.WithIdleTimeout(max(l.q.Window, time.Second))))
		loc = l.local.Load()
	}
	return loc.AdmitAt(now, key)
}

// grant is a script's answer.
type grant struct {
	n, remaining  int64
	retry, resetD time.Duration
}

func (g grant) decision(q ratelimit.Quota) ratelimit.Decision {
	return ratelimit.Decision{Allowed: g.n > 0, Remaining: g.remaining, RetryAfter: g.retry, Reset: g.resetD, Quota: q}
}

// take runs the GCRA script for up to n requests of key, batched with the
// concurrent decisions when the client can pipeline.
func (l *Limiter) take(ctx context.Context, key string, n int64) (grant, error) {
	if l.batch != nil {
		return l.batch.take(ctx, key, n)
	}
	return l.takeOne(ctx, key, n)
}

// takeOne runs the GCRA script for up to n requests of key, alone.
func (l *Limiter) takeOne(ctx context.Context, key string, n int64) (grant, error) {
	return parseGrant(gcra.Run(ctx, l.client, []string{l.redisKey(key)}, l.args[0], l.args[1], n))
}

// parseGrant reads the script's answer.
func parseGrant(cmd *redis.Cmd) (grant, error) {
	vals, err := cmd.Int64Slice()
	if err != nil {
		return grant{}, err
	}
	if len(vals) != 4 {
		return grant{}, errors.New("redisrate: unexpected script reply of " + strconv.Itoa(len(vals)) + " values")
	}
	return grant{
		n: vals[0], remaining: vals[1],
		retry:  time.Duration(max(vals[2], 0)) * time.Microsecond,
		resetD: time.Duration(max(vals[3], 0)) * time.Microsecond,
	}, nil
}

// lease is a replica's slice of one key's quota.
type lease struct {
	mu sync.Mutex // guards the fields below, and is held while a new slice is fetched

	tokens  int64     // requests left in the slice
	expires time.Time // when what is left is dropped
	g       grant     // Redis's answer when the slice was taken
	at      time.Time // when it was taken
}

func (l *Limiter) admitLeased(ctx context.Context, key string) (ratelimit.Decision, error) {
	e := l.leases.Acquire(key)
	defer l.leases.Release(e)
	ls := e.Value
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := l.now()
	if now.After(ls.expires) {
		ls.tokens = 0
	}
	if ls.tokens == 0 && (ls.g.n > 0 || now.Sub(ls.at) >= ls.g.retry) {
		g, err := l.take(ctx, key, l.lease)
		if err != nil {
			return ratelimit.Decision{}, err
		}
		ls.g, ls.at, ls.tokens, ls.expires = g, now, g.n, now.Add(l.leaseAge)
	}
	elapsed := now.Sub(ls.at)
	if ls.tokens == 0 {
		// Redis turned the last fetch away: wait for its retry time
		// without asking again.
		return ratelimit.Decision{Quota: l.q, RetryAfter: max(ls.g.retry-elapsed, time.Nanosecond), Reset: max(ls.g.resetD-elapsed, 0)}, nil
	}
	ls.tokens--
	d := ratelimit.Decision{Allowed: true, Quota: l.q, Remaining: ls.g.remaining + ls.tokens, Reset: max(ls.g.resetD-elapsed, 0)}
	if d.Remaining == 0 {
		d.RetryAfter = max(ls.g.retry-elapsed, time.Nanosecond)
	}
	return d, nil
}
