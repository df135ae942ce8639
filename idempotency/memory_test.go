package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/internal/storetest"
)

func TestMemoryStoreContract(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		storetest.Run(t, idempotency.NewMemoryStore(), "", time.Sleep)
	})
}

func TestMemoryStoreBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := idempotency.NewMemoryStore(idempotency.WithMaxEntries(2))
		s.Reserve(ctx, "a", "", time.Second)
		e, _, _ := s.Reserve(ctx, "b", "", time.Minute)
		s.Complete(ctx, "b", e.Token, []byte("x"), time.Hour)
		if _, _, err := s.Reserve(ctx, "c", "", time.Second); !errors.Is(err, idempotency.ErrStoreFull) {
			t.Fatalf("third key: got %v, want ErrStoreFull", err)
		}
		time.Sleep(time.Second) // a's lease runs out: its entry is dropped
		if _, ok, err := s.Reserve(ctx, "c", "", time.Second); !ok || err != nil {
			t.Fatalf("after a lease ran out: got %v, %v; want a reservation", ok, err)
		}
		if s.Len() != 2 {
			t.Errorf("Len: got %d, want 2", s.Len())
		}

		small := idempotency.NewMemoryStore(idempotency.WithMaxBytes(1000))
		e, _, _ = small.Reserve(ctx, "k", "", time.Minute)
		if err := small.Complete(ctx, "k", e.Token, make([]byte, 1000), time.Hour); !errors.Is(err, idempotency.ErrStoreFull) {
			t.Fatalf("record above the byte bound: got %v, want ErrStoreFull", err)
		}
	})
}

// TestMemoryStoreRefusedRecord: a record above the byte bound is refused,
// and its key stays reserved until the lease runs out.
func TestMemoryStoreRefusedRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := idempotency.NewMemoryStore(idempotency.WithMaxBytes(1000))
		storetest.RefusedRecord(t, s, "k", make([]byte, 1000), func() func() { return func() {} }, time.Sleep)
	})
}

// TestRecordTooLargeForStoreDoesNotRunAgain: a response the handler sent
// but the memory store could not hold is not run again by an immediate
// retry (409); once the lease ran out, a retry runs.
func TestRecordTooLargeForStoreDoesNotRunAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := idempotency.Middleware(idempotency.NewMemoryStore(idempotency.WithMaxBytes(4096)), idempotency.WithLease(time.Minute))(
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				w.Write(make([]byte, 8192))
			}))
		if got := serve(h, "POST", key1, "", "{}"); got.status != 200 || len(got.body) != 8192 {
			t.Fatalf("first: got %d with %d bytes, want the handler's 200", got.status, len(got.body))
		}
		problemOf(t, serve(h, "POST", key1, "", "{}"), http.StatusConflict)
		if runs.Load() != 1 {
			t.Fatalf("an immediate retry ran the handler again (%d runs)", runs.Load())
		}
		time.Sleep(time.Minute)
		if got := serve(h, "POST", key1, "", "{}"); got.status != 200 || runs.Load() != 2 {
			t.Errorf("after the lease: got %d after %d runs, want a second run", got.status, runs.Load())
		}
	})
}

// TestMemoryStoreSweepsLazily checks that expired entries go without a
// goroutine, as the store is used: many keys, each expiring.
func TestMemoryStoreSweepsLazily(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := idempotency.NewMemoryStore()
		for i := range 1000 {
			e, _, _ := s.Reserve(ctx, fmt.Sprint(i), "", time.Minute)
			s.Complete(ctx, fmt.Sprint(i), e.Token, []byte("r"), time.Hour)
		}
		time.Sleep(time.Hour)
		s.Reserve(ctx, "new", "", time.Minute)
		if s.Len() != 1 {
			t.Errorf("Len after the records expired: got %d, want 1", s.Len())
		}
	})
}

func TestMemoryStoreContention(t *testing.T) {
	ctx := context.Background()
	s := idempotency.NewMemoryStore()
	var reserved atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for k := range 50 {
				key := fmt.Sprint(k)
				e, ok, err := s.Reserve(ctx, key, "fp", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					reserved.Add(1)
					s.Complete(ctx, key, e.Token, []byte(key), time.Hour)
				}
			}
		})
	}
	wg.Wait()
	if got := reserved.Load(); got != 50 {
		t.Errorf("reservations: got %d, want one per key (50)", got)
	}
}

func TestMemoryStoreZeroValue(t *testing.T) {
	var s idempotency.MemoryStore
	ctx := context.Background()
	if _, ok, err := s.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	e, ok, err := s.Reserve(ctx, "k", "fp", time.Minute)
	if !ok || err != nil {
		t.Fatalf("Reserve: %v, %v", ok, err)
	}
	if err := s.Complete(ctx, "k", e.Token, []byte("r"), time.Hour); err != nil {
		t.Fatal(err)
	}
}
