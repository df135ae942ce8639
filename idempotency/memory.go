package idempotency

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults of a [MemoryStore].
const (
	DefaultMaxEntries = 1_000_000
	DefaultMaxBytes   = 256 << 20
)

// ErrStoreFull is returned by [MemoryStore.Reserve] when the store holds
// as many live entries, or bytes, as it may, and by [MemoryStore.Complete]
// when the record would not fit. The Guard treats it as any store failure:
// a request it cannot reserve fails (503 by default), and a record that
// does not fit leaves its key reserved until the lease runs out, so that a
// retry within the lease gets a conflict instead of running again.
// Evicting a live record instead could let a retry run twice.
var ErrStoreFull = errors.New("idempotency: memory store full")

// entryOverhead is what each entry counts against the byte bound besides
// its key, fingerprint and response.
const entryOverhead = 128

// MemoryStore is a [Store] in the process's memory, for a service that runs
// as one instance (or for tests). It is bounded in entries and bytes, drops
// expired entries lazily as it is used (no goroutine, no timer per entry),
// and is safe for concurrent use. Build it with [NewMemoryStore]; the zero
// value is an empty store with the default bounds.
type MemoryStore struct {
	maxEntries int
	maxBytes   int

	mu      sync.Mutex // guards the fields below
	entries map[string]*memEntry
	byExp   expiryHeap // every entry, by expiry
	bytes   int
	token   uint64 // the last fencing token issued
}

type memEntry struct {
	Entry
	key     string
	expires time.Time
	size    int
	idx     int // in byExp
}

// A MemoryOption configures a [MemoryStore].
type MemoryOption interface{ applyMemory(*MemoryStore) }

type maxEntriesOption int

func (o maxEntriesOption) applyMemory(s *MemoryStore) { s.maxEntries = int(o) }

// WithMaxEntries bounds how many keys the store holds (default 1,000,000).
// Size it, and the byte bound, for the keyed requests a TTL holds: at 100
// keyed requests a second, records kept 24 hours are 8.64 million entries;
// a shorter TTL (WithTTL) holds fewer.
// NewMemoryStore panics if n < 1.
func WithMaxEntries(n int) MemoryOption { return maxEntriesOption(n) }

type maxBytesOption int

func (o maxBytesOption) applyMemory(s *MemoryStore) { s.maxBytes = int(o) }

// WithMaxBytes bounds the bytes of keys, fingerprints and records the store
// holds (default 256 MiB), counting a fixed overhead per entry.
// NewMemoryStore panics if n < 1.
func WithMaxBytes(n int) MemoryOption { return maxBytesOption(n) }

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore(opts ...MemoryOption) *MemoryStore {
	s := &MemoryStore{maxEntries: DefaultMaxEntries, maxBytes: DefaultMaxBytes, entries: make(map[string]*memEntry)}
	for _, o := range opts {
		o.applyMemory(s)
	}
	switch {
	case s.maxEntries < 1:
		panic(fmt.Sprintf("idempotency: WithMaxEntries: n must be at least 1, got %d", s.maxEntries))
	case s.maxBytes < 1:
		panic(fmt.Sprintf("idempotency: WithMaxBytes: n must be at least 1, got %d", s.maxBytes))
	}
	return s
}

// Len returns the number of keys the store holds, expired ones not yet
// dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Reserve implements [Store].
func (s *MemoryStore) Reserve(ctx context.Context, key, fingerprint string, lease time.Duration) (Entry, bool, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, false, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = make(map[string]*memEntry)
	}
	s.sweepLocked(now)
	if e, ok := s.entries[key]; ok {
		// Live: sweepLocked dropped the expired ones.
		return copyEntry(e, now), false, nil
	}
	size := entryOverhead + len(key) + len(fingerprint)
	if len(s.entries) >= cmp.Or(s.maxEntries, DefaultMaxEntries) || s.bytes+size > cmp.Or(s.maxBytes, DefaultMaxBytes) {
		return Entry{}, false, ErrStoreFull
	}
	s.token++
	e := &memEntry{Entry: Entry{Fingerprint: fingerprint, Token: s.token}, key: key, expires: now.Add(lease), size: size}
	s.entries[key] = e
	s.bytes += size
	heap.Push(&s.byExp, e)
	return e.Entry, true, nil
}

// Complete implements [Store].
func (s *MemoryStore) Complete(ctx context.Context, key string, token uint64, response []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.heldLocked(key, token, now)
	if err != nil {
		return err
	}
	size := entryOverhead + len(key) + len(e.Fingerprint) + len(response)
	if s.bytes-e.size+size > cmp.Or(s.maxBytes, DefaultMaxBytes) {
		// The reservation stays until its lease runs out: the request
		// ran, and a retry must not run it again at once.
		return ErrStoreFull
	}
	s.bytes += size - e.size
	e.size = size
	e.Done = true
	e.Response = append([]byte(nil), response...)
	e.expires = now.Add(ttl)
	heap.Fix(&s.byExp, e.idx)
	return nil
}

// Release implements [Store].
func (s *MemoryStore) Release(ctx context.Context, key string, token uint64) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.heldLocked(key, token, now)
	if err != nil {
		return err
	}
	s.removeLocked(e)
	return nil
}

// Get implements [Store].
func (s *MemoryStore) Get(ctx context.Context, key string) (Entry, bool, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, false, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || !now.Before(e.expires) {
		return Entry{}, false, nil
	}
	return copyEntry(e, now), true, nil
}

// heldLocked returns the live reservation of key held with token.
func (s *MemoryStore) heldLocked(key string, token uint64, now time.Time) (*memEntry, error) {
	e, ok := s.entries[key]
	if !ok || e.Done || e.Token != token || !now.Before(e.expires) {
		return nil, ErrLeaseLost
	}
	return e, nil
}

func (s *MemoryStore) removeLocked(e *memEntry) {
	delete(s.entries, e.key)
	s.bytes -= e.size
	heap.Remove(&s.byExp, e.idx)
}

// sweepLocked drops the entries that expired by now; each is dropped once,
// so the work is amortised over the calls that added them.
func (s *MemoryStore) sweepLocked(now time.Time) {
	for len(s.byExp) > 0 && !now.Before(s.byExp[0].expires) {
		s.removeLocked(s.byExp[0])
	}
}

// copyEntry returns what holds e's key as of now.
func copyEntry(m *memEntry, now time.Time) Entry {
	e := m.Entry
	e.Response = append([]byte(nil), e.Response...)
	if !e.Done {
		e.LeaseLeft = m.expires.Sub(now)
	}
	return e
}

// expiryHeap orders entries by expiry; each knows its index.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
