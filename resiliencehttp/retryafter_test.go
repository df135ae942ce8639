package resiliencehttp

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{"0", 0, true},
		{" 5 ", 5 * time.Second, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999999", maxRetryAfter, true},
		{"999999999", maxRetryAfter, true},
		{"Mon, 23 Nov 2026 12:00:30 GMT", 30 * time.Second, true}, // RFC 1123
		{"Monday, 23-Nov-26 12:01:00 GMT", time.Minute, true},     // RFC 850
		{"Mon Nov 23 12:00:10 2026", 10 * time.Second, true},      // ANSI C asctime
		{"Mon, 23 Nov 2026 11:00:00 GMT", 0, true},                // in the past: no wait
		{"Fri, 23 Nov 2096 12:00:00 GMT", maxRetryAfter, true},    // far future: capped
		{"Mon, 23 Nov 2026 12:00:30 +0100", 0, false},             // not an HTTP-date
	}
	for _, tt := range tests {
		d, ok := parseRetryAfter(tt.in, now)
		if d != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, d, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Mon, 23 Nov 2026 12:00:30 GMT", "-1", "", "99999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Add("0000000001")
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, %v: out of range", s, d, ok)
		}
		// Leading zeros never change a delta-seconds value.
		if ok && s != "" && isDigits(s) {
			if d2, ok2 := parseRetryAfter("0000000000"+s, now); d2 != d || !ok2 {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; with leading zeros %v, %v", s, d, ok, d2, ok2)
			}
		}
	})
}

func TestRetryAfterLeadingZeros(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"0000000001":   time.Second,
		"00":           0,
		"000000000120": 2 * time.Minute,
	} {
		if d, ok := parseRetryAfter(in, now); !ok || d != want {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, true", in, d, ok, want)
		}
	}
}

func TestTargetMakesDefaultPortExplicit(t *testing.T) {
	tests := map[string]string{
		"https://example.com/x":     "example.com:443",
		"http://example.com/x":      "example.com:80",
		"http://example.com:8080/x": "example.com:8080",
		"https://[::1]/x":           "[::1]:443",
		"unix://sock/x":             "sock",
	}
	for in, want := range tests {
		u := mustParse(t, in)
		if got := target(u); got != want {
			t.Errorf("target(%s) = %q, want %q", in, got, want)
		}
	}
}
