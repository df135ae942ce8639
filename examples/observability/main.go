// Command observability runs a load against a flaky in-process HTTP server
// through the standard pipeline, with the OpenTelemetry SDK installed, and
// shows what the policies did: a short summary every second, and every
// instrument on a Prometheus endpoint (or on stdout at the end).
//
//	go run ./examples/observability                  # metrics on http://127.0.0.1:9464/metrics
//	go run ./examples/observability -prom ""         # metrics printed on stdout at the end
//	go run ./examples/observability -duration 30s -workers 16
//
// The server fails 20% of requests with a 503 and answers 5% too slowly for
// the attempt timeout; for a few seconds in the middle of the run it is
// down altogether, so the breaker opens and closes again.
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
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	duration := flag.Duration("duration", 15*time.Second, "how long to run the load")
	workers := flag.Int("workers", 8, "concurrent callers")
	promAddr := flag.String("prom", "127.0.0.1:9464", "loopback address of the Prometheus endpoint; empty prints the metrics on stdout at the end")
	flag.Parse()
	if err := run(*duration, *workers, *promAddr); err != nil {
		log.Fatal(err)
	}
}

func run(duration time.Duration, workers int, promAddr string) error {
	// The SDK: one reader for the live summary, one for export.
	summary := sdkmetric.NewManualReader()
	opts := []sdkmetric.Option{sdkmetric.WithReader(summary)}
	var stdout *sdkmetric.PeriodicReader
	if promAddr != "" {
		exp, err := prometheus.New()
		if err != nil {
			return err
		}
		opts = append(opts, sdkmetric.WithReader(exp))
		ln, err := net.Listen("tcp", promAddr)
		if err != nil {
			return err
		}
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			ln.Close()
			return fmt.Errorf("-prom %s: only loopback addresses are served", promAddr)
		}
		srv := &http.Server{Handler: promhttp.Handler()}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Printf("metrics on http://%s/metrics\n", ln.Addr())
	} else {
		exp, err := stdoutmetric.New(stdoutmetric.WithPrettyPrint())
		if err != nil {
			return err
		}
		stdout = sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))
		opts = append(opts, sdkmetric.WithReader(stdout))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	defer mp.Shutdown(context.Background())
	// Installed globally: the pipeline takes the global provider by
	// default, and otelhttp does too.
	otel.SetMeterProvider(mp)

	flaky := newFlakyServer(duration)
	upstream := httptest.NewServer(flaky)
	defer upstream.Close()

	conns := http.DefaultTransport.(*http.Transport).Clone()
	defer conns.CloseIdleConnections()
	// otelhttp inside the pipeline: one client span per attempt, with
	// http.request.resend_count on retries thanks to MarkResends.
	tr, err := resiliencehttp.Standard(otelhttp.NewTransport(resiliencehttp.MarkResends(conns)),
		standard.WithName("flaky"),
		standard.WithTotalTimeout(2*time.Second),
		standard.WithAttemptTimeout(200*time.Millisecond),
		standard.WithBreaker(breaker.WithWindow(4*time.Second, time.Second), breaker.WithOpenDuration(time.Second)),
		standard.WithBulkhead(workers, bulkhead.WithMaxWait(50*time.Millisecond)),
	)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr}

	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if call(ctx, client, upstream.URL) {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	fmt.Println("  time   calls ok/failed   attempts   retries   breaker     events (cumulative)")
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			done = true
		}
		var rm metricdata.ResourceMetrics
		if err := summary.Collect(context.Background(), &rm); err != nil {
			return err
		}
		s := summarize(rm)
		fmt.Printf("%5.1fs %8d/%-8d %8d %9d   %-10s  %s\n", time.Since(start).Seconds(),
			ok.Load(), failed.Load(), s.attempts, s.events["retry.scheduled"], s.breaker, s.eventList())
	}
	wg.Wait()
	if stdout != nil {
		return stdout.ForceFlush(context.Background())
	}
	return nil
}

// call makes one GET and reports whether it ended with a 200.
func call(ctx context.Context, c *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+fmt.Sprintf("/items/%d", rand.IntN(1000)), nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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
	events   map[string]int64 // "policy.event"
	breaker  string
}

func summarize(rm metricdata.ResourceMetrics) summaryLine {
	s := summaryLine{events: map[string]int64{}, breaker: "-"}
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
				for _, p := range d.DataPoints {
					if st, _ := p.Attributes.Value("resilience.breaker.state"); p.Value == 1 {
						s.breaker = st.AsString()
					}
				}
			}
		}
	}
	return s
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
