// Command ratelimit shows one quota shared by two server instances through
// Redis, and a client that paces itself from the RateLimit headers.
//
// It starts a redis-server on a free loopback port (if redis-server is on
// the PATH; otherwise each instance falls back to its own in-memory
// limiter, and the program says so), then two HTTP servers on loopback,
// each with its own ratelimit/redisrate limiter on that Redis: together
// they admit 20 requests at once and then one every 200ms. A client sends
// requests to the two instances in turn through resiliencehttp.Standard:
// the quota is kept per client (X-Client), so its RateLimit fields carry a
// partition key (pk) and say nothing about other clients of the host. The
// transport therefore does not hold the whole host when one says r=0; a
// 429 is waited out for its own Retry-After, and once most of the host's
// recent answers are 429 the pushback gate holds the next requests until
// the pause ends, instead of spending them on more 429s. An eager client,
// a plain http.Client that ignores the headers, runs alongside for
// comparison.
//
// Run it with
//
//	go run ./examples/ratelimit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	duration := flag.Duration("duration", 4*time.Second, "how long the clients run")
	flag.Parse()

	q := ratelimit.Quota{Name: "demo", Limit: 20, Window: 4 * time.Second}
	var admitters [2]ratelimit.Admitter
	addr, stop, err := startRedis()
	if err != nil {
		fmt.Printf("no shared Redis (%v): each instance uses its own in-memory limiter, so together they admit twice the quota\n", err)
		for i := range admitters {
			admitters[i] = ratelimit.NewLocal(q)
		}
	} else {
		defer stop()
		fmt.Printf("redis-server on %s: both instances share one quota of %d requests per %v\n", addr, q.Limit, q.Window)
		for i := range admitters {
			rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
			defer rdb.Close()
			admitters[i] = redisrate.New(rdb, q)
		}
	}

	var served [2]atomic.Int64
	var urls [2]string
	for i := range admitters {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served[i].Add(1)
			io.WriteString(w, "ok")
		})
		srv := httptest.NewServer(ratelimit.Middleware(admitters[i], func(r *http.Request) string { return r.Header.Get("X-Client") })(h))
		defer srv.Close()
		urls[i] = srv.URL
	}

	type result struct {
		name             string
		admitted, turned int
	}
	done := make(chan result)
	// The pacing client is the library's standard transport: each 429
	// is retried after its Retry-After, and once most recent answers are
	// 429s its pushback gate holds the next requests until the pause ends,
	// so it sends few requests that would be turned away. Both instances
	// serve one quota, as replicas behind one host name would: the gate is
	// keyed by that name, not by instance.
	paced, err := resiliencehttp.Standard(nil,
		standard.WithKey(func(context.Context) string { return "api.example" }),
		standard.WithoutBreaker())
	if err != nil {
		log.Fatal(err)
	}
	clients := map[bool]*http.Client{true: {Transport: paced}, false: http.DefaultClient}
	run := func(name string, pace bool) {
		res := result{name: name}
		deadline := time.Now().Add(*duration)
		for i := 0; time.Now().Before(deadline); i++ {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			req, _ := http.NewRequestWithContext(ctx, "GET", urls[i%2], nil)
			req.Header.Set("X-Client", name) // each client has its own quota
			resp, err := clients[pace].Do(req)
			if err != nil {
				cancel()
				if errors.Is(err, pushback.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
					break // the quota comes back only after the run's end
				}
				log.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode == http.StatusOK {
				res.admitted++
			} else {
				res.turned++
			}
			if !pace {
				time.Sleep(time.Millisecond)
			}
		}
		done <- res
	}
	go run("pacing", true)
	go run("eager", false)
	results := []result{<-done, <-done}
	fmt.Printf("each client's share over %v: about %d (%d at once, then one every %v)\n",
		*duration, q.Limit+int64(*duration/q.Interval()), q.Limit, q.Interval())
	for _, r := range results {
		fmt.Printf("%-6s client: %4d admitted, %4d turned away with 429\n", r.name, r.admitted, r.turned)
	}
	fmt.Printf("requests served by instance 1: %d, by instance 2: %d\n", served[0].Load(), served[1].Load())
}

// startRedis starts a redis-server on a free loopback port, if one is on
// the PATH, and waits for it to answer.
func startRedis() (addr string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "ratelimit-example")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop = func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Wait until it accepts connections (dialing with go-redis before then
	// would log each refusal).
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			if err := rdb.Ping(context.Background()).Err(); err == nil {
				return addr, stop, nil
			}
		}
		if time.Since(start) > 10*time.Second {
			stop()
			return "", nil, fmt.Errorf("redis-server did not answer on %s", addr)
		}
	}
}
