package benchmarks

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
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
	stats := newClient(b)
	for _, c := range contenders {
		for _, goroutines := range []int{1, 64} {
			b.Run(c.name+"/goroutines="+strconv.Itoa(goroutines), func(b *testing.B) {
				f := c.make(b)
				ctx := context.Background()
				if err := stats.ConfigResetStat(ctx).Err(); err != nil {
					b.Fatal(err)
				}
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
				if us, ok := scriptMicros(b, stats); ok {
					b.ReportMetric(us, "redis-µs/script")
				}
			})
		}
	}
}

// scriptMicros returns the time Redis spent, on average, running one
// script (EVALSHA or EVAL) since the last CONFIG RESETSTAT, as INFO
// commandstats reports it: the server's share of a decision's round trip.
func scriptMicros(b *testing.B, c *redis.Client) (float64, bool) {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var calls, usec float64
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			rest, ok = strings.CutPrefix(strings.TrimSpace(line), "cmdstat_eval:")
		}
		if !ok {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				calls += n
			case "usec":
				usec += n
			}
		}
	}
	if calls == 0 {
		return 0, false
	}
	return usec / calls, true
}

// BenchmarkServerRateLimitPaired compares, from one goroutine, the exact
// mode of our Redis limiter with github.com/go-redis/redis_rate in the
// same run, decision by decision: each iteration makes one decision with
// each (in turns first), timing them apart, so that load from elsewhere on
// the machine falls on both alike. It reports each one's decisions per
// second and their ratio (ours over redis_rate's; above 1 is faster).
func BenchmarkServerRateLimitPaired(b *testing.B) {
	addr := startRedis(b)
	q := ratelimit.Quota{Name: "bench", Limit: 1_000_000_000, Window: 1000 * time.Second}
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr})
		b.Cleanup(func() { c.Close() })
		return c
	}
	ours := redisrate.New(newClient(), q, redisrate.WithReplicas(1))
	theirs := redis_rate.NewLimiter(newClient())
	lim := redis_rate.Limit{Rate: 1_000_000_000, Burst: 1_000_000_000, Period: 1000 * time.Second}
	ctx := context.Background()
	decide := [2]func() error{
		func() error {
			d, err := ours.Admit(ctx, "k")
			if err == nil && !d.Allowed {
				err = errors.New("not admitted")
			}
			return err
		},
		func() error {
			r, err := theirs.Allow(ctx, "k", lim)
			if err == nil && r.Allowed == 0 {
				err = errors.New("not admitted")
			}
			return err
		},
	}
	var spent [2]time.Duration
	i := 0
	for b.Loop() {
		for j := range 2 {
			k := (i + j) % 2
			start := time.Now()
			if err := decide[k](); err != nil {
				b.Fatal(err)
			}
			spent[k] += time.Since(start)
		}
		i++
	}
	n := float64(i)
	b.ReportMetric(n/spent[0].Seconds(), "ours-decisions/s")
	b.ReportMetric(n/spent[1].Seconds(), "redis_rate-decisions/s")
	b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "ours/redis_rate")
}

// BenchmarkServerRateLimitClientCost measures what each Redis limiter
// costs its caller apart from the round trip: one decision from one
// goroutine against a stub client that answers every script at once with
// a canned reply (so no network, no Redis). Our exact mode and
// github.com/go-redis/redis_rate each build their script call and read
// the answer as they would against Redis.
func BenchmarkServerRateLimitClientCost(b *testing.B) {
	q := ratelimit.Quota{Name: "bench", Limit: 1_000_000_000, Window: 1000 * time.Second}
	ctx := context.Background()
	b.Run("redis-exact", func(b *testing.B) {
		l := redisrate.New(stub{reply: []any{int64(1), int64(999_999_999), int64(0), int64(1)}}, q, redisrate.WithReplicas(1))
		for b.Loop() {
			if d, err := l.Admit(ctx, "k"); err != nil || !d.Allowed {
				b.Fatalf("not admitted: %v", err)
			}
		}
	})
	b.Run("redis_rate", func(b *testing.B) {
		l := redis_rate.NewLimiter(stub{reply: []any{int64(1), int64(999_999_999), "-1", "0.000001"}})
		lim := redis_rate.Limit{Rate: 1_000_000_000, Burst: 1_000_000_000, Period: 1000 * time.Second}
		for b.Loop() {
			if r, err := l.Allow(ctx, "k", lim); err != nil || r.Allowed == 0 {
				b.Fatalf("not admitted: %v", err)
			}
		}
	})
}

// stub answers every script with reply, as Redis would have; it is the
// part of a go-redis client that both limiters call.
type stub struct {
	redis.Cmdable
	reply []any
}

func (s stub) EvalSha(_ context.Context, _ string, keys []string, args ...any) *redis.Cmd {
	return s.result(keys, args)
}

func (s stub) Eval(_ context.Context, _ string, keys []string, args ...any) *redis.Cmd {
	return s.result(keys, args)
}

func (s stub) EvalShaRO(_ context.Context, _ string, keys []string, args ...any) *redis.Cmd {
	return s.result(keys, args)
}

func (s stub) EvalRO(_ context.Context, _ string, keys []string, args ...any) *redis.Cmd {
	return s.result(keys, args)
}

// result builds the command as a client would (its arguments in one
// slice) and answers it.
func (s stub) result(keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", "sha", len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := redis.NewCmd(context.Background(), append(cmdArgs, args...)...)
	cmd.SetVal(s.reply)
	return cmd
}
