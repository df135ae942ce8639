package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/dunglas/httpsfv"

	"github.com/resilience-go/resilience"
)

// HeaderName is the HTTP request header that carries a key, and
// ReplayedHeader the response header that marks a replayed response.
const (
	HeaderName     = "Idempotency-Key"
	ReplayedHeader = "Idempotent-Replayed"
)

// Errors of [ParseKey], matched with errors.Is.
var (
	ErrKeyMissing   = errors.New("idempotency: no Idempotency-Key")
	ErrKeyMalformed = errors.New("idempotency: malformed Idempotency-Key")
	ErrKeyTooLong   = errors.New("idempotency: Idempotency-Key too long")
)

// ParseKey returns the key in the Idempotency-Key header values vs (as
// http.Header.Values returns them). The IETF httpapi draft makes the header
// a Structured Field String (Idempotency-Key: "8e03978e-..."), parsed here
// with github.com/dunglas/httpsfv; parameters on it are not part of the key
// and are ignored, as Structured Fields have it. With bare, a value that is
// not quoted is taken as the key whole, as it is (Idempotency-Key:
// 8e03978e-...): "invoice-17;attempt=1" is the key invoice-17;attempt=1,
// not invoice-17 with a parameter, so distinct bare values are distinct
// keys. A key must be non-empty printable ASCII of at most max bytes; a
// bare one has no space, quote or comma. The error wraps [ErrKeyMissing],
// [ErrKeyMalformed] or [ErrKeyTooLong].
func ParseKey(vs []string, bare bool, max int) (string, error) {
	if len(vs) == 0 {
		return "", ErrKeyMissing
	}
	size := 0
	for _, v := range vs {
		size += len(v) + 1
	}
	// A quoted key of max bytes, with room for escapes and parameters:
	// anything longer cannot hold a valid key, and is not parsed.
	if size > 2*max+64 {
		return "", fmt.Errorf("%w: %d bytes, at most %d", ErrKeyTooLong, size, max)
	}
	var key string
	if v := strings.Trim(vs[0], " \t"); bare && len(vs) == 1 && !strings.HasPrefix(v, `"`) {
		if !printable(v, false) {
			return "", fmt.Errorf("%w: a bare key must be printable ASCII without spaces, quotes or commas", ErrKeyMalformed)
		}
		key = v
	} else {
		item, err := httpsfv.UnmarshalItem(vs)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrKeyMalformed, err)
		}
		s, ok := item.Value.(string)
		if !ok {
			if bare {
				return "", fmt.Errorf("%w: a %s, want a quoted string or one bare key", ErrKeyMalformed, sfType(item.Value))
			}
			return "", fmt.Errorf("%w: a %s, want a quoted string (or allow bare keys)", ErrKeyMalformed, sfType(item.Value))
		}
		key = s
	}
	switch {
	case key == "":
		return "", fmt.Errorf("%w: empty", ErrKeyMalformed)
	case len(key) > max:
		return "", fmt.Errorf("%w: %d bytes, at most %d", ErrKeyTooLong, len(key), max)
	case !printable(key, true):
		return "", fmt.Errorf("%w: not printable ASCII", ErrKeyMalformed)
	}
	return key, nil
}

// sfType names the type of a Structured Field bare item.
func sfType(v any) string {
	switch v.(type) {
	case httpsfv.Token:
		return "token"
	case int64:
		return "integer"
	case float64:
		return "decimal"
	case bool:
		return "boolean"
	case []byte:
		return "byte sequence"
	}
	return fmt.Sprintf("%T", v)
}

// printable reports whether s is printable ASCII; space is allowed only
// inside a quoted string, and a bare value may hold no quote or comma.
func printable(s string, quoted bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || (!quoted && (c == ' ' || c == '"' || c == ',')) {
			return false
		}
	}
	return s != ""
}

// FormatKey returns key as the value of an Idempotency-Key header: a
// Structured Field String written with github.com/dunglas/httpsfv, or, with
// bare, key as it is. It returns an error if key is empty or not printable
// ASCII.
func FormatKey(key string, bare bool) (string, error) {
	if key == "" || !printable(key, !bare) {
		return "", fmt.Errorf("%w: %q", ErrKeyMalformed, key)
	}
	if bare {
		return key, nil
	}
	return httpsfv.Marshal(httpsfv.NewItem(key))
}

// NewKey returns a new random key: a version 4 UUID from crypto/rand (122
// random bits), the form the IETF draft's examples use.
func NewKey() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

type bareKey struct{}

// Header returns the Idempotency-Key header value for the call described in
// ctx, if a [Keyer] gave it a key (resilience.Call.IdempotencyKey), in the
// form the Keyer was configured with. resiliencehttp calls it for every
// attempt.
func Header(ctx context.Context) (string, bool) {
	c, ok := resilience.CallFrom(ctx)
	if !ok || c.IdempotencyKey == "" {
		return "", false
	}
	bare, _ := ctx.Value(bareKey{}).(bool)
	v, err := FormatKey(c.IdempotencyKey, bare)
	if err != nil {
		return "", false
	}
	return v, true
}
