package resiliencehttp

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
)

func TestRateLimitPause(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want time.Duration
		ok   bool
	}{
		{"exhausted", []string{`"burst";r=0;t=30`}, 30 * time.Second, true},
		{"quota left", []string{`"burst";r=5;t=30`}, 0, false},
		{"the longest exhausted policy wins", []string{`"burst";r=0;t=2, "daily";r=0;t=3600, "minute";r=7;t=7200`}, time.Hour, true},
		{"several field lines", []string{`"burst";r=1;t=2`, `"daily";r=0;t=9`}, 9 * time.Second, true},
		{"token name, extra parameters", []string{`burst;r=0;t=4;q=100`}, 4 * time.Second, true},
		{"a partition's quota spent", []string{`burst;r=0;t=4;pk=:cHJvamVjdDEyMw==:`}, 0, false},
		{"a partition's and the host's", []string{`"tenant";r=0;t=9;pk=:cHJvamVjdDEyMw==:, "host";r=0;t=2`}, 2 * time.Second, true},
		{"partition key of another type", []string{`"tenant";r=0;t=9;pk="a"`}, 0, false},
		{"restored now", []string{`"burst";r=0;t=0`}, 0, true},
		{"no reset time", []string{`"burst";r=0`}, 0, false},
		{"no remaining", []string{`"burst";t=10`}, 0, false},
		{"negative reset", []string{`"burst";r=0;t=-1`}, 0, false},
		{"negative remaining", []string{`"burst";r=-1;t=10`}, 0, false},
		{"decimal reset", []string{`"burst";r=0;t=1.5`}, 0, false},
		{"string remaining", []string{`"burst";r="0";t=10`}, 0, false},
		{"inner list skipped", []string{`("a" "b");r=0;t=10, "c";r=0;t=2`}, 2 * time.Second, true},
		{"huge reset capped", []string{`"burst";r=0;t=999999999999999`}, maxRateLimitReset, true},
		{"not a structured field", []string{`limit=10, remaining=0, reset=30`}, 0, false},
		{"bare parameters", []string{`r=0;t=2`}, 0, false},
		{"garbage", []string{`"unterminated`}, 0, false},
		{"empty", []string{``}, 0, false},
		{"too large", []string{`"a";r=0;t=5,` + strings.Repeat(` "x";r=1;t=1,`, 400) + ` "z";r=1;t=1`}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.in {
				h.Add("RateLimit", v)
			}
			d, ok := rateLimitPause(h)
			if d != tt.want || ok != tt.ok {
				t.Fatalf("rateLimitPause(%q) = %v, %v; want %v, %v", tt.in, d, ok, tt.want, tt.ok)
			}
		})
	}
	if d, ok := rateLimitPause(http.Header{}); ok || d != 0 {
		t.Fatalf("no field: got %v, %v", d, ok)
	}
}

// A field serialized with httpsfv, as the server side writes it, reads back.
func TestRateLimitPauseReadsWhatHTTPSFVWrites(t *testing.T) {
	for _, reset := range []int64{0, 1, 30, 86399} {
		burst := httpsfv.NewItem("burst")
		burst.Params.Add("r", int64(0))
		burst.Params.Add("t", reset)
		daily := httpsfv.NewItem("daily")
		daily.Params.Add("r", int64(10))
		daily.Params.Add("t", int64(86400))
		v, err := httpsfv.Marshal(httpsfv.List{burst, daily})
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"Ratelimit": {v}}
		if d, ok := rateLimitPause(h); !ok || d != time.Duration(reset)*time.Second {
			t.Fatalf("%q: got %v, %v; want %ds", v, d, ok, reset)
		}
	}
}

func FuzzRateLimitPause(f *testing.F) {
	for _, s := range []string{
		`"burst";r=0;t=30`,
		`"a";r=0;t=2, "b";r=1;t=9`,
		`burst;r=0;t=4;pk=:cHJvamVjdDEyMw==:`,
		`("a" "b");r=0;t=10`,
		`"burst";r=0;t=999999999999999`,
		`r=0;t=2`,
		`"x`,
	} {
		f.Add(s, "")
	}
	f.Add(`"a";r=0`, `"b";r=0;t=1`)
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{"Ratelimit": {a, b}}
		d, ok := rateLimitPause(h)
		if d < 0 || d > maxRateLimitReset {
			t.Fatalf("%q, %q: pause %v out of [0, %v]", a, b, d, maxRateLimitReset)
		}
		if !ok && d != 0 {
			t.Fatalf("%q, %q: pause %v without ok", a, b, d)
		}
		if len(a)+len(b) > maxRateLimitField && ok {
			t.Fatalf("a field of %d bytes was read", len(a)+len(b))
		}
	})
}
