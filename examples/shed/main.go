// Command shed shows a server that sheds load by priority and drains on
// shutdown.
//
// It starts an HTTP server on loopback whose handler serves 4 requests at
// once, each taking 50ms (80 requests per second), behind shed.Middleware
// with a queue of 8 requests that wait at most 50ms. Clients then offer it
// about 4 times that for two seconds, a third of the requests marked
// critical, a third sheddable (Resilience-Priority), a third with no
// header, while a probe checks /healthz every 100ms. The program prints,
// per priority, how many were served and shed, and the Retry-After they
// got; then it shuts down: Shedder.Drain stops admitting and waits for the
// requests in flight, after which http.Server.Shutdown has nothing left to
// wait for.
//
// Run it with
//
//	go run ./examples/shed
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
	"sort"
	"sync"
	"time"

	"github.com/resilience-go/resilience/shed"
)

func main() {
	duration := flag.Duration("duration", 2*time.Second, "how long the clients run")
	flag.Parse()

	// The work: 4 at once, 50ms each.
	mux := http.NewServeMux()
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(50 * time.Millisecond):
			io.WriteString(w, "done\n")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })

	s := shed.New(shed.Fixed(4), shed.WithQueue(8, 50*time.Millisecond))
	handler := shed.Middleware(s,
		shed.WithHealthCheck(func(r *http.Request) bool { return r.URL.Path == "/healthz" }),
	)(mux)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	base := "http://" + lis.Addr().String()

	type tally struct {
		ok, shed    int
		retryAfters map[string]int
	}
	var (
		mu     sync.Mutex
		byPrio = map[string]*tally{}
		health = [2]int{} // ok, failed
		wg     sync.WaitGroup
	)
	priorities := []string{"critical", "", "sheddable"}
	for _, p := range priorities {
		byPrio[p] = &tally{retryAfters: map[string]int{}}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path, prio string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if prio != "" {
			req.Header.Set(shed.PriorityHeader, prio)
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}

	end := time.Now().Add(*duration)
	wg.Go(func() { // the health probe
		for time.Now().Before(end) {
			resp, err := get("/healthz", "")
			mu.Lock()
			if err == nil && resp.StatusCode == 200 {
				health[0]++
			} else {
				health[1]++
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	})
	// About 320 requests per second: 4 times what the server can do.
	for i := 0; time.Now().Before(end); i++ {
		prio := priorities[i%3]
		wg.Go(func() {
			resp, err := get("/work", prio)
			if err != nil {
				log.Print(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			t := byPrio[prio]
			if resp.StatusCode == 200 {
				t.ok++
			} else {
				t.shed++
				t.retryAfters[resp.Header.Get("Retry-After")]++
			}
		})
		time.Sleep(time.Second / 320)
	}
	wg.Wait()

	fmt.Printf("%-10s %6s %6s  %s\n", "priority", "served", "shed", "Retry-After (s): count")
	for _, p := range priorities {
		t, name := byPrio[p], p
		if name == "" {
			name = "(none)"
		}
		var ras []string
		for ra := range t.retryAfters {
			ras = append(ras, ra)
		}
		sort.Strings(ras)
		var parts string
		for _, ra := range ras {
			parts += fmt.Sprintf("%s: %d  ", ra, t.retryAfters[ra])
		}
		fmt.Printf("%-10s %6d %6d  %s\n", name, t.ok, t.shed, parts)
	}
	fmt.Printf("health checks: %d ok, %d failed\n", health[0], health[1])

	// Shutdown: one slow request in flight, then drain.
	slow := make(chan int, 1)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "finished\n")
	})
	go func() {
		resp, err := get("/slow", "critical")
		if err != nil {
			slow <- 0
			return
		}
		slow <- resp.StatusCode
	}()
	for running, _ := s.InFlight(); running == 0; running, _ = s.InFlight() {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Drain(ctx) }()
	for !s.Draining() {
		time.Sleep(time.Millisecond)
	}
	resp, err := get("/work", "critical")
	if err == nil {
		fmt.Printf("during the drain, a new request: %d, Retry-After %s, Connection: close %v\n",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	fmt.Printf("drained in %v; the request in flight got %d\n", time.Since(start).Round(10*time.Millisecond), <-slow)
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	fmt.Println("server shut down")
}
