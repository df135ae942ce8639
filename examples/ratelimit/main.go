// Command ratelimit shows one quota shared by two server instances through
// Redis, and a client that paces itself from the RateLimit headers.
//
// It starts a redis-server on a free loopback port (if redis-server is on
// the PATH; otherwise each instance falls back to its own in-memory
// limiter, and the program says so), then two HTTP servers on loopback,
// each with its own ratelimit/redisrate limiter on that Redis: together
// they admit 20 requests at once and then one every 200ms. A client sends
// requests to the two instances in turn. When a response says no quota is
// left (RateLimit: r=0), the client waits the t seconds the header gives
// before its next request, instead of spending requests on 429s; an eager
// client, which ignores the headers, runs alongside for comparison.
//
// Run it with
//
//	go run ./examples/ratelimit
package main

import (
	"context"
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

	"github.com/dunglas/httpsfv"
	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
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
	run := func(name string, pace bool) {
		res := result{name: name}
		deadline := time.Now().Add(*duration)
		for i := 0; time.Now().Before(deadline); i++ {
			req, _ := http.NewRequest("GET", urls[i%2], nil)
			req.Header.Set("X-Client", name) // each client has its own quota
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				res.admitted++
			} else {
				res.turned++
			}
			if wait, empty := exhausted(resp.Header); pace && empty {
				time.Sleep(min(wait, time.Until(deadline)))
			} else if !pace {
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

// exhausted reports whether the RateLimit header says no quota is left, and
// then how long until the next request is admitted (its t, in seconds; at
// least 100ms, since t is rounded to whole seconds by the server).
func exhausted(h http.Header) (time.Duration, bool) {
	v := h.Get(ratelimit.StateHeader)
	if v == "" {
		return 0, false
	}
	l, err := httpsfv.UnmarshalList([]string{v})
	if err != nil {
		return 0, false
	}
	for _, m := range l {
		it, ok := m.(httpsfv.Item)
		if !ok {
			continue
		}
		r, _ := it.Params.Get("r")
		t, _ := it.Params.Get("t")
		if rv, ok := r.(int64); ok && rv == 0 {
			tv, _ := t.(int64)
			return max(time.Duration(tv)*time.Second, 100*time.Millisecond), true
		}
	}
	return 0, false
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
