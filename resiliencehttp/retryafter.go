package resiliencehttp

import (
	"net/http"
	"strings"
	"time"
)

// maxRetryAfter bounds the delay read from a Retry-After header before any
// policy caps it further, so that absurd values cannot overflow.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value (RFC 9110, section 10.2.3):
// delta-seconds or an HTTP-date in any of the three forms http.ParseTime
// accepts. A date at or before now means no wait. ok is false for an empty
// or malformed value.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		// Leading zeros add nothing ("0001" is 1 s). Long digit strings
		// overflow any parse; they are "a very long time" and get the cap.
		v = trimZeros(v)
		const maxDigits = 9 // 999,999,999 s, far above maxRetryAfter
		if len(v) > maxDigits {
			return maxRetryAfter, true
		}
		var secs int64
		for _, c := range v {
			secs = secs*10 + int64(c-'0')
		}
		return min(time.Duration(secs)*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}

// trimZeros drops the leading zeros of a string of digits, keeping one
// digit ("000" → "0").
func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
