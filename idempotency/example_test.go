package idempotency_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/idempotency"
)

func ExampleMiddleware() {
	charges := 0
	charge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		charges++
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "charge %d", charges)
	})
	h := idempotency.Middleware(idempotency.NewMemoryStore())(charge)

	for range 2 {
		r := httptest.NewRequest("POST", "/charges", strings.NewReader(`{"amount":100}`))
		r.Header.Set("Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Printf("%d %s replayed=%q\n", w.Code, w.Body, w.Header().Get("Idempotent-Replayed"))
	}
	fmt.Println("charges:", charges)
	// Output:
	// 201 charge 1 replayed=""
	// 201 charge 1 replayed="true"
	// charges: 1
}

func ExampleKeyer() {
	k := idempotency.NewKeyer([]string{"payments.example.com"})
	// Adapters (resiliencehttp, resiliencegrpc) describe each call; here by
	// hand.
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "payments.example.com:443", Method: "POST"})
	k.Do(ctx, func(ctx context.Context) error {
		c, _ := resilience.CallFrom(ctx)
		fmt.Println("idempotent:", c.Idempotent, "key length:", len(c.IdempotencyKey))
		return nil
	})
	// Output:
	// idempotent: true key length: 36
}

func ExampleParseKey() {
	key, err := idempotency.ParseKey([]string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`}, false, idempotency.DefaultMaxKeyLength)
	fmt.Println(key, err)
	_, err = idempotency.ParseKey([]string{`8e03978e-40d5-43e8-bc93-6894a57f9324`}, false, idempotency.DefaultMaxKeyLength)
	fmt.Println(err != nil)
	// Output:
	// 8e03978e-40d5-43e8-bc93-6894a57f9324 <nil>
	// true
}
