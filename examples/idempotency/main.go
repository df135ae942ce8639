// Command idempotency shows POSTs retried safely through a network that
// loses responses.
//
// Two instances of a payment service run on the loopback interface behind
// idempotency.Middleware, sharing one Redis (the program starts its own
// redis-server on a free loopback port when one is on the PATH; otherwise
// both instances share one in-memory store, and the program says so). The
// network in front of them loses some responses: the service charged the
// card and recorded its answer, then the connection is dropped before the
// answer reaches the client.
//
// The client sends one POST per order through resiliencehttp.Standard with
// standard.WithIdempotencyKeys: each order's call gets a key, the same on
// every retry, and the client alternates between the two instances, so a
// retry often reaches the instance that did not run the first attempt. It
// prints how many responses were lost, how many retries got a replayed
// answer, and checks that every order was charged exactly once.
//
// Run it with
//
//	go run ./examples/idempotency
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/idempotency/redisstore"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	var (
		orders = flag.Int("orders", 100, "orders to charge")
		loss   = flag.Float64("loss", 0.2, "share of responses the network loses")
		seed   = flag.Uint64("seed", 1, "seed of the network's losses")
	)
	flag.Parse()
	if err := run(*orders, *loss, *seed); err != nil {
		log.Fatal(err)
	}
}

// bank is the side effect: how many times each order was charged.
type bank struct {
	mu      sync.Mutex
	charged map[string]int
}

func (b *bank) charge(order string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.charged[order]++
	return b.charged[order]
}

func run(orders int, loss float64, seed uint64) error {
	store, stop, err := newStore()
	if err != nil {
		return err
	}
	defer stop()

	b := &bank{charged: make(map[string]int)}
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		order, _ := io.ReadAll(r.Body)
		b.charge(string(order))
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "charged order %s\n", order)
	})

	// The network: it loses some responses after the service answered.
	var (
		netMu sync.Mutex
		rng   = rand.New(rand.NewPCG(seed, seed))
		lost  atomic.Int64
	)
	lossy := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			netMu.Lock()
			drop := rng.Float64() < loss
			netMu.Unlock()
			if !drop {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&discard{h: http.Header{}}, r) // the service ran; its answer is lost
			lost.Add(1)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		})
	}

	var instances []string
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: lossy(idempotency.Middleware(store)(service))}
		go srv.Serve(ln)
		defer srv.Shutdown(context.Background())
		instances = append(instances, ln.Addr().String())
		fmt.Printf("instance %d on %s\n", i+1, ln.Addr())
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	tr, err := resiliencehttp.Standard(&roundRobin{base: base, addrs: instances},
		standard.WithIdempotencyKeys("payments.internal"),
		standard.WithRetries(6),
		standard.WithRetry(retry.WithBackoff(5*time.Millisecond, 50*time.Millisecond)),
		standard.WithoutBreaker()) // every loss would count against the breaker
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr}

	var replayed, failed int
	for i := 1; i <= orders; i++ {
		order := strconv.Itoa(i)
		resp, err := client.Post("http://payments.internal/charge", "text/plain", strings.NewReader(order))
		if err != nil {
			failed++
			fmt.Printf("order %s: %v\n", order, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
			fmt.Printf("order %s: %s\n", order, resp.Status)
			continue
		}
		if resp.Header.Get(idempotency.ReplayedHeader) == "true" {
			replayed++
		}
	}

	once := 0
	for i := 1; i <= orders; i++ {
		switch n := b.charged[strconv.Itoa(i)]; n {
		case 1:
			once++
		default:
			fmt.Printf("order %d charged %d times\n", i, n)
		}
	}
	fmt.Printf("%d orders sent, %d responses lost by the network, %d retries answered with the recorded response\n",
		orders, lost.Load(), replayed)
	fmt.Printf("%d of %d orders charged exactly once, %d calls failed\n", once, orders, failed)
	if once != orders || failed != 0 {
		return errors.New("some order was not charged exactly once")
	}
	fmt.Println("every side effect happened exactly once")
	return nil
}

// newStore starts a redis-server on a free loopback port and returns a
// store on it, or an in-memory store shared by both instances when
// redis-server is not installed.
func newStore() (idempotency.Store, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Println("redis-server is not on the PATH: both instances share one in-memory store instead")
		return idempotency.NewMemoryStore(), func() {}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dir, err := os.MkdirTemp("", "idempotency-example")
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	stop := func() {
		rdb.Close()
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			stop()
			return nil, nil, errors.New("redis-server did not answer within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("redis-server on 127.0.0.1:%s, shared by both instances\n", port)
	return redisstore.New(rdb), stop, nil
}

// roundRobin sends each request to the next instance, as a load balancer
// would.
type roundRobin struct {
	base  http.RoundTripper
	addrs []string
	next  atomic.Uint64
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Host = rr.addrs[rr.next.Add(1)%uint64(len(rr.addrs))]
	r.Host = "payments.internal"
	return rr.base.RoundTrip(r)
}

// discard is a ResponseWriter whose output the network loses.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header       { return d.h }
func (*discard) Write(p []byte) (int, error) { return len(p), nil }
func (*discard) WriteHeader(int)             {}
