package resiliencehttp

import (
	"net/http"
	"time"

	"github.com/dunglas/httpsfv"
)

// maxRateLimitField bounds the RateLimit field lines read from a response,
// in bytes: a longer field is ignored, so that a hostile server cannot make
// the client parse megabytes on every response.
const maxRateLimitField = 4 << 10

// maxRateLimitReset bounds the pause read from a RateLimit field before any
// policy caps it further.
const maxRateLimitReset = 24 * time.Hour

// rateLimitPause reads the RateLimit field of a response (IETF httpapi
// RateLimit header fields draft: a Structured Field List whose members name
// a quota policy, with r, the quota units left, and t, the seconds until the
// quota is restored), and returns how long the client should wait before
// its next call to the host: the longest t among the policies with no
// quota left (r=0) that cover every request to the host. A member with a
// partition key (the pk parameter) covers only the requests of its
// partition (a tenant's, a user's): the next request of that partition is
// answered 429 with Retry-After, which its own retry honours, and the
// host's other requests are not held. ok is false when no such policy is
// exhausted, or the field is absent, too large or malformed; members
// without a usable r or t are skipped.
func rateLimitPause(h http.Header) (d time.Duration, ok bool) {
	vs := h.Values("RateLimit")
	if len(vs) == 0 {
		return 0, false
	}
	n := 0
	for _, v := range vs {
		if n += len(v); n > maxRateLimitField {
			return 0, false
		}
	}
	list, err := httpsfv.UnmarshalList(vs)
	if err != nil {
		return 0, false
	}
	for _, m := range list {
		it, isItem := m.(httpsfv.Item)
		if !isItem || it.Params == nil {
			continue
		}
		if _, partitioned := it.Params.Get("pk"); partitioned {
			continue
		}
		r, _ := it.Params.Get("r")
		t, _ := it.Params.Get("t")
		left, rOK := r.(int64)
		reset, tOK := t.(int64)
		if !rOK || !tOK || left != 0 || reset < 0 {
			continue
		}
		pause := maxRateLimitReset
		if reset < int64(maxRateLimitReset/time.Second) {
			pause = time.Duration(reset) * time.Second
		}
		d, ok = max(d, pause), true
	}
	return d, ok
}
