// Command observability runs a paced load against two flaky in-process
// HTTP services through the standard pipeline, with the OpenTelemetry SDK
// installed, and shows what the policies did: a short summary every
// second, and every instrument on a Prometheus endpoint (or on stdout at
// the end). The dashboard and alerts in docs/grafana and docs/prometheus
// are tested against it.
//
//	go run ./examples/observability                  # metrics on http://127.0.0.1:9464/metrics
//	go run ./examples/observability -prom ""         # metrics printed on stdout at the end
//	go run ./examples/observability -duration 30s -rate 200
//
// The items service fails 20% of GETs with a 503 and answers 5% too slowly
// for the attempt timeout; for a few seconds in the middle of the run it is
// down altogether, so its breaker opens and closes again. The orders
// service takes POSTs with idempotency keys (idempotency.Middleware) under
// a server-side rate limit (ratelimit.Middleware, 429 with Retry-After);
// the client paces itself from the RateLimit fields (its pushback gate
// holds or turns away calls while the quota is empty), another client
// ignores them and gets 429s; the client's own rate limit, below the
// offered load, turns some calls away too. Some orders take longer than
// the attempt timeout, so their retries find the first attempt still
// running (conflict) or its answer recorded (replayed).
//
// The load is paced, as real clients are: calls start at a fixed rate
// (-rate per second), each on its own goroutine, whether the earlier ones
// succeed, fail or are refused at once by an open breaker.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	duration := flag.Duration("duration", 15*time.Second, "how long to run the load")
	perSecond := flag.Float64("rate", 100, "calls started per second")
	promAddr := flag.String("prom", "127.0.0.1:9464", "loopback address of the Prometheus endpoint; empty prints the metrics on stdout at the end")
	flag.Parse()
	if *perSecond <= 0 || *perSecond > 10000 {
		log.Fatal("-rate must be in (0, 10000]")
	}
	if _, err := run(*duration, *perSecond, *promAddr); err != nil {
		log.Fatal(err)
	}
}

// run runs the load for duration and returns the number of calls made.
func run(duration time.Duration, perSecond float64, promAddr string) (calls int64, err error) {
	// The SDK: one reader for the live summary, one for export.
	summary := sdkmetric.NewManualReader()
	opts := []sdkmetric.Option{sdkmetric.WithReader(summary)}
	var stdout *sdkmetric.PeriodicReader
	if promAddr != "" {
		exp, err := prometheus.New()
		if err != nil {
			return 0, err
		}
		opts = append(opts, sdkmetric.WithReader(exp))
		ln, err := net.Listen("tcp", promAddr)
		if err != nil {
			return 0, err
		}
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			ln.Close()
			return 0, fmt.Errorf("-prom %s: only loopback addresses are served", promAddr)
		}
		srv := &http.Server{Handler: promhttp.Handler()}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Printf("metrics on http://%s/metrics\n", ln.Addr())
	} else {
		exp, err := stdoutmetric.New(stdoutmetric.WithPrettyPrint())
		if err != nil {
			return 0, err
		}
		stdout = sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))
		opts = append(opts, sdkmetric.WithReader(stdout))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	defer mp.Shutdown(context.Background())
	// Installed globally: the pipeline and the servers' middleware take the
	// global provider by default, and otelhttp does too.
	otel.SetMeterProvider(mp)

	items := httptest.NewServer(newFlakyServer(duration))
	defer items.Close()
	// The orders service: a server-side rate limit outermost, then
	// deduplication by idempotency key, as a server stacks them.
	orders := httptest.NewServer(
		ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "orders", Limit: 25, Window: time.Second}), nil, ratelimit.WithName("orders"))(
			idempotency.Middleware(idempotency.NewMemoryStore(), idempotency.WithName("orders"))(
				http.HandlerFunc(order))))
	defer orders.Close()

	conns := http.DefaultTransport.(*http.Transport).Clone()
	defer conns.CloseIdleConnections()
	// otelhttp inside the pipeline: one client span per attempt, with
	// http.request.resend_count on retries thanks to MarkResends.
	tr, err := resiliencehttp.Standard(otelhttp.NewTransport(resiliencehttp.MarkResends(conns)),
		standard.WithName("flaky"),
		standard.WithTotalTimeout(2*time.Second),
		standard.WithAttemptTimeout(200*time.Millisecond),
		standard.WithBreaker(breaker.WithWindow(4*time.Second, time.Second), breaker.WithOpenDuration(time.Second)),
		standard.WithBulkhead(16, bulkhead.WithMaxWait(50*time.Millisecond)),
		standard.WithIdempotencyKeys(strings.TrimPrefix(orders.URL, "http://")),
		// A client-side limit below the offered load, failing fast, so
		// that the client's own rejections show too.
		standard.WithRateLimit(60, 10, ratelimit.WithMaxWait(0)),
	)
	if err != nil {
		return 0, err
	}
	client := &http.Client{Transport: tr}
	// Another client of the orders service ignores its RateLimit fields
	// and 429s: the server turns some of its orders away.
	careless := &http.Client{Transport: conns}

	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	// Calls start at a fixed rate, each on its own goroutine, as requests
	// reaching a service do: the offered load does not depend on how fast
	// calls end, and a call refused at once by an open breaker does not
	// make the next one start sooner.
	begin := time.Now()
	wg.Go(func() {
		arrivals := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer arrivals.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-arrivals.C:
			}
			wg.Go(func() {
				var good bool
				switch n := rand.IntN(10); {
				case n == 0:
					good = call(ctx, careless, http.MethodPost, orders.URL+"/orders")
				case n < 3:
					good = call(ctx, client, http.MethodPost, orders.URL+"/orders")
				default:
					good = call(ctx, client, http.MethodGet, items.URL+fmt.Sprintf("/items/%d", rand.IntN(1000)))
				}
				if good {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			})
		}
	})

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	fmt.Println("  time   calls ok/failed   attempts   retries   breakers              events (cumulative)")
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			done = true
		}
		var rm metricdata.ResourceMetrics
		if err := summary.Collect(context.Background(), &rm); err != nil {
			return 0, err
		}
		s := summarize(rm, map[string]string{hostPort(items.URL): "items", hostPort(orders.URL): "orders"})
		fmt.Printf("%5.1fs %8d/%-8d %8d %9d   %-20s  %s\n", time.Since(begin).Seconds(),
			ok.Load(), failed.Load(), s.attempts, s.events["retry.scheduled"], s.breakerList(), s.eventList())
	}
	wg.Wait()
	calls = ok.Load() + failed.Load()
	if stdout != nil {
		return calls, stdout.ForceFlush(context.Background())
	}
	return calls, nil
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// call makes one request and reports whether it ended with a 2xx.
func call(ctx context.Context, c *http.Client, method, url string) bool {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// order takes an order: 1-5ms mostly, but one in four takes 600ms, more
// than the client's attempt timeout, so its retry finds it running. It
// finishes whether or not the client is still waiting, as a charge would.
func order(w http.ResponseWriter, r *http.Request) {
	d := time.Duration(1+rand.IntN(5)) * time.Millisecond
	if rand.IntN(4) == 0 {
		d = 600 * time.Millisecond
	}
	time.Sleep(d)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "created")
}

// flakyServer fails some requests, answers some too slowly, and is down
// for the middle fifth of the run.
type flakyServer struct {
	start        time.Time
	downAt, upAt time.Duration
}

func newFlakyServer(run time.Duration) *flakyServer {
	return &flakyServer{start: time.Now(), downAt: run * 2 / 5, upAt: run * 3 / 5}
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	since := time.Since(s.start)
	switch p := rand.Float64(); {
	case since >= s.downAt && since < s.upAt:
		w.WriteHeader(http.StatusServiceUnavailable)
	case p < 0.20:
		w.WriteHeader(http.StatusServiceUnavailable)
	case p < 0.25:
		select { // slower than the attempt timeout
		case <-time.After(500 * time.Millisecond):
		case <-r.Context().Done():
		}
	default:
		time.Sleep(time.Duration(1+rand.IntN(5)) * time.Millisecond)
		io.WriteString(w, "ok")
	}
}

type summaryLine struct {
	attempts int64
	events   map[string]int64  // "policy.event"
	breakers map[string]string // service name -> state
}

func summarize(rm metricdata.ResourceMetrics, names map[string]string) summaryLine {
	s := summaryLine{events: map[string]int64{}, breakers: map[string]string{}}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name != "resilience.events" {
					continue
				}
				for _, p := range d.DataPoints {
					pol, _ := p.Attributes.Value("resilience.policy")
					ev, _ := p.Attributes.Value("resilience.event")
					s.events[pol.AsString()+"."+ev.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				if m.Name != "resilience.attempt.duration" {
					continue
				}
				for _, p := range d.DataPoints {
					s.attempts += int64(p.Count)
				}
			case metricdata.Gauge[int64]:
				if m.Name != "resilience.breaker.state" {
					continue
				}
				// Each breaker reports every state, 1 for its current one.
				for _, p := range d.DataPoints {
					if p.Value != 1 {
						continue
					}
					st, _ := p.Attributes.Value("resilience.breaker.state")
					host, _ := p.Attributes.Value("server.address")
					port, _ := p.Attributes.Value("server.port")
					name := names[fmt.Sprintf("%s:%d", host.AsString(), port.AsInt64())]
					if name == "" {
						name = host.AsString()
					}
					s.breakers[name] = st.AsString()
				}
			}
		}
	}
	return s
}

func (s summaryLine) breakerList() string {
	var parts []string
	for name, st := range s.breakers {
		parts = append(parts, name+":"+st)
	}
	slices.Sort(parts)
	if parts == nil {
		return "-"
	}
	return strings.Join(parts, " ")
}

func (s summaryLine) eventList() string {
	var parts []string
	for k, v := range s.events {
		if k != "retry.scheduled" {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
