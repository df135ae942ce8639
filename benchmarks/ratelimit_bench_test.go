package benchmarks

import (
	"context"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
)

// startRedis runs a redis-server on a free loopback port for the benchmark
// (the library's internal/redistest is not importable from this module). It
// skips when redis-server is missing, except under CI=true.
func startRedis(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("redis-server is not installed, and CI=true")
		}
		tb.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", tb.TempDir(), "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", port)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Since(start) > 10*time.Second {
			tb.Fatal("redis-server did not start")
		}
	}
}

// BenchmarkServerRateLimit measures decisions per second of server-side
// limiters, every one admitting (one key, with a quota of a billion
// requests, refilling at a million a second, which no run exhausts): the in-memory ratelimit.Local, our Redis limiter in its exact
// and leasing modes, and github.com/go-redis/redis_rate (GCRA in Lua too),
// from one goroutine and from 64. Redis runs on the same machine, on
// loopback.
func BenchmarkServerRateLimit(b *testing.B) {
	addr := startRedis(b)
	q := ratelimit.Quota{Name: "bench", Limit: 1_000_000_000, Window: 1000 * time.Second}
	newClient := func(b *testing.B) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr})
		b.Cleanup(func() { c.Close() })
		return c
	}
	type decide func(ctx context.Context) (bool, error)
	contenders := []struct {
		name string
		make func(b *testing.B) decide
	}{
		{"local", func(b *testing.B) decide {
			l := ratelimit.NewLocal(q)
			return func(ctx context.Context) (bool, error) { d, err := l.Admit(ctx, "k"); return d.Allowed, err }
		}},
		{"redis-exact", func(b *testing.B) decide {
			l := redisrate.New(newClient(b), q, redisrate.WithReplicas(1))
			return func(ctx context.Context) (bool, error) { d, err := l.Admit(ctx, "k"); return d.Allowed, err }
		}},
		{"redis-lease100", func(b *testing.B) decide {
			l := redisrate.New(newClient(b), q, redisrate.WithReplicas(1), redisrate.WithLease(100, time.Second))
			return func(ctx context.Context) (bool, error) { d, err := l.Admit(ctx, "k"); return d.Allowed, err }
		}},
		{"redis_rate", func(b *testing.B) decide {
			l := redis_rate.NewLimiter(newClient(b))
			lim := redis_rate.Limit{Rate: 1_000_000_000, Burst: 1_000_000_000, Period: 1000 * time.Second}
			return func(ctx context.Context) (bool, error) {
				r, err := l.Allow(ctx, "k", lim)
				if err != nil {
					return false, err
				}
				return r.Allowed > 0, nil
			}
		}},
	}
	for _, c := range contenders {
		for _, goroutines := range []int{1, 64} {
			b.Run(c.name+"/goroutines="+strconv.Itoa(goroutines), func(b *testing.B) {
				f := c.make(b)
				ctx := context.Background()
				if goroutines == 1 {
					for b.Loop() {
						if ok, err := f(ctx); err != nil || !ok {
							b.Fatalf("not admitted: %v", err)
						}
					}
				} else {
					procs := runtime.GOMAXPROCS(0)
					b.SetParallelism((goroutines + procs - 1) / procs) // RunParallel starts parallelism × GOMAXPROCS goroutines
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if ok, err := f(ctx); err != nil || !ok {
								b.Errorf("not admitted: %v", err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
			})
		}
	}
}
