package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/idempotency"
)

// Defaults of a [Store].
const (
	DefaultPrefix   = "idempotency:"
	DefaultFenceTTL = 7 * 24 * time.Hour
)

// Store is an idempotency.Store on Redis. Build it with [New]; it is safe
// for concurrent use. Closing the Redis client is the caller's business.
//
// The zero value is not usable: it has no Redis client, and each of its
// methods returns an error saying so (which the idempotency Guard turns
// into 503, as any store failure).
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	fenceTTL time.Duration
}

// An Option configures a [Store].
type Option interface{ apply(*Store) }

type prefixOption string

func (o prefixOption) apply(s *Store) { s.prefix = string(o) }

// WithPrefix sets the prefix of the store's Redis keys (default
// "idempotency:"), so that several stores can share a database.
func WithPrefix(p string) Option { return prefixOption(p) }

type fenceTTLOption time.Duration

func (o fenceTTLOption) apply(s *Store) { s.fenceTTL = time.Duration(o) }

// WithFenceTTL sets how long a key's fencing counter is kept after its last
// reservation (default 7 days). It must be longer than any request may run
// and longer than the records' TTL, since a counter that expired starts
// again from 1. New panics if d <= 0.
func WithFenceTTL(d time.Duration) Option { return fenceTTLOption(d) }

// New returns a Store on rdb, a *redis.Client, *redis.ClusterClient or any
// redis.UniversalClient. It panics if rdb is nil or an option is invalid.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	if rdb == nil {
		panic("redisstore: New: nil Redis client")
	}
	s := &Store{rdb: rdb, prefix: DefaultPrefix, fenceTTL: DefaultFenceTTL}
	for _, o := range opts {
		o.apply(s)
	}
	if s.fenceTTL <= 0 {
		panic(fmt.Sprintf("redisstore: WithFenceTTL: d must be positive, got %v", s.fenceTTL))
	}
	return s
}

// A key's value is "<token>:<state>:<fingerprint length>:<fingerprint>"
// followed, once completed (state 1), by the response; state 0 is a
// reservation in flight.

var reserveScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {0, v, redis.call('PTTL', KEYS[1])} end
local t = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], t .. ':0:' .. string.len(ARGV[1]) .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return {1, t}
`)

var completeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local t, rest = string.match(v, '^(%d+):0:(.*)$')
if t ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], t .. ':1:' .. rest .. ARGV[2], 'PX', ARGV[3])
return 1
`)

var getScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {} end
return {v, redis.call('PTTL', KEYS[1])}
`)

var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local t = string.match(v, '^(%d+):0:')
if t ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// errZero is the error of every method of a zero Store.
var errZero = errors.New("redisstore: zero Store has no Redis client (build it with New)")

func (s *Store) keys(key string) []string {
	k := s.prefix + "{" + key + "}"
	return []string{k, k + ":fence"}
}

// Reserve implements idempotency.Store.
func (s *Store) Reserve(ctx context.Context, key, fingerprint string, lease time.Duration) (idempotency.Entry, bool, error) {
	if s.rdb == nil {
		return idempotency.Entry{}, false, errZero
	}
	res, err := reserveScript.Run(ctx, s.rdb, s.keys(key), fingerprint, ms(lease), ms(s.fenceTTL)).Slice()
	if err != nil {
		return idempotency.Entry{}, false, fmt.Errorf("redisstore: reserve: %w", err)
	}
	if len(res) < 2 {
		return idempotency.Entry{}, false, fmt.Errorf("redisstore: reserve: unexpected reply %v", res)
	}
	if n, _ := res[0].(int64); n == 1 {
		t, ok := res[1].(int64)
		if !ok || t <= 0 {
			return idempotency.Entry{}, false, fmt.Errorf("redisstore: reserve: unexpected token %v", res[1])
		}
		return idempotency.Entry{Fingerprint: fingerprint, Token: uint64(t)}, true, nil
	}
	v, ok := res[1].(string)
	if !ok {
		return idempotency.Entry{}, false, fmt.Errorf("redisstore: reserve: unexpected value %T", res[1])
	}
	e, err := parse(v, res[2:])
	return e, false, err
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, key string, token uint64, response []byte, ttl time.Duration) error {
	if s.rdb == nil {
		return errZero
	}
	n, err := completeScript.Run(ctx, s.rdb, s.keys(key)[:1], strconv.FormatUint(token, 10), response, ms(ttl)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: complete: %w", err)
	}
	if n != 1 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key string, token uint64) error {
	if s.rdb == nil {
		return errZero
	}
	n, err := releaseScript.Run(ctx, s.rdb, s.keys(key)[:1], strconv.FormatUint(token, 10)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: release: %w", err)
	}
	if n != 1 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Get implements idempotency.Store.
func (s *Store) Get(ctx context.Context, key string) (idempotency.Entry, bool, error) {
	if s.rdb == nil {
		return idempotency.Entry{}, false, errZero
	}
	res, err := getScript.Run(ctx, s.rdb, s.keys(key)[:1]).Slice()
	if err != nil {
		return idempotency.Entry{}, false, fmt.Errorf("redisstore: get: %w", err)
	}
	if len(res) == 0 {
		return idempotency.Entry{}, false, nil
	}
	v, ok := res[0].(string)
	if !ok {
		return idempotency.Entry{}, false, fmt.Errorf("redisstore: get: unexpected value %T", res[0])
	}
	e, err := parse(v, res[1:])
	return e, err == nil, err
}

var errValue = errors.New("redisstore: malformed value")

// parse reads a key's value, and pttl, the key's PTTL when the script
// returned it.
func parse(v string, pttl []any) (idempotency.Entry, error) {
	ts, rest, ok1 := strings.Cut(v, ":")
	st, rest, ok2 := strings.Cut(rest, ":")
	ls, rest, ok3 := strings.Cut(rest, ":")
	t, err1 := strconv.ParseUint(ts, 10, 64)
	l, err2 := strconv.Atoi(ls)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil || l < 0 || l > len(rest) || (st != "0" && st != "1") {
		return idempotency.Entry{}, errValue
	}
	e := idempotency.Entry{Token: t, Fingerprint: rest[:l], Done: st == "1"}
	if e.Done {
		e.Response = []byte(rest[l:])
	} else if len(pttl) > 0 {
		if ms, ok := pttl[0].(int64); ok && ms > 0 {
			e.LeaseLeft = time.Duration(ms) * time.Millisecond
		}
	}
	return e, nil
}

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }
