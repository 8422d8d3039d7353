package server

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Errors of request parsing. Each maps to one HTTP status in httpStatus.
var (
	errBadRange        = errors.New("malformed Range")
	errUnsatisfiable   = errors.New("range not satisfiable")
	errMultiRange      = errors.New("several ranges in one request are not supported; ask for one range")
	errBadLastEventID  = errors.New("malformed Last-Event-ID")
	errChangedVersion  = errors.New("the file has changed since that version")
	errNotFound        = errors.New("not found")
	errTooManyStreams  = errors.New("too many streams; retry later")
	errChanging        = errors.New("the file is changing; retry later")
	errUnauthenticated = errors.New("unauthorized")
)

// span is a half-open byte interval [start, end).
type span struct{ start, end int64 }

// parseRange parses one HTTP byte range ("bytes=a-b", "bytes=a-" or
// "bytes=-n") against a file of size bytes. An empty spec means the whole
// file. The end of the returned span is exclusive and capped at size.
func parseRange(spec string, size int64) (span, error) {
	whole := span{0, size}
	if spec == "" {
		return whole, nil
	}
	unit, set, ok := strings.Cut(spec, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return span{}, fmt.Errorf("%w: %q is not of the form bytes=first-last", errBadRange, spec)
	}
	var parts []string
	for p := range strings.SplitSeq(set, ",") {
		if p = strings.Trim(p, " \t"); p != "" {
			parts = append(parts, p)
		}
	}
	switch len(parts) {
	case 0:
		return span{}, fmt.Errorf("%w: %q names no range", errBadRange, spec)
	case 1:
	default:
		return span{}, fmt.Errorf("%w (%d given)", errMultiRange, len(parts))
	}
	first, last, ok := strings.Cut(parts[0], "-")
	if !ok {
		return span{}, fmt.Errorf("%w: %q has no '-'", errBadRange, parts[0])
	}
	if first == "" { // suffix range: the last n bytes
		n, ok := parseDigits(last)
		if !ok {
			return span{}, fmt.Errorf("%w: %q", errBadRange, parts[0])
		}
		if n == 0 || size == 0 {
			return span{}, fmt.Errorf("%w: %q of a %d-byte file", errUnsatisfiable, parts[0], size)
		}
		return span{max(0, size-n), size}, nil
	}
	a, ok := parseDigits(first)
	if !ok {
		return span{}, fmt.Errorf("%w: %q", errBadRange, parts[0])
	}
	b := int64(math.MaxInt64)
	if last != "" {
		if b, ok = parseDigits(last); !ok || b < a {
			return span{}, fmt.Errorf("%w: %q", errBadRange, parts[0])
		}
	}
	if a >= size {
		return span{}, fmt.Errorf("%w: %q of a %d-byte file", errUnsatisfiable, parts[0], size)
	}
	return span{a, min(b, size-1) + 1}, nil
}

// parseDigits parses ASCII decimal digits, saturating at MaxInt64: a
// position past any file is well-formed, just unsatisfiable.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseLastEventID parses a Last-Event-ID: the offset of a block the client
// holds, so it must name a block of this file.
func parseLastEventID(s string, size int64, blockSize int) (int64, error) {
	n, ok := parseDigits(s)
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: %q is not a decimal byte offset", errBadLastEventID, s)
	case n >= size:
		return 0, fmt.Errorf("%w: offset %s is past the end of a %d-byte file", errBadLastEventID, s, size)
	case n%int64(blockSize) != 0:
		return 0, fmt.Errorf("%w: offset %d is not on a %d-byte block boundary", errBadLastEventID, n, blockSize)
	}
	return n, nil
}

// matchesETag reports whether an If-Match header value admits etag: "*", or
// a list of entity tags one of which is strongly equal to etag. Bare tags
// (without quotes) are accepted too, for hand-written requests.
func matchesETag(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if strings.HasPrefix(t, "W/") {
			continue // a weak tag never matches strongly
		}
		if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
			t = t[1 : len(t)-1]
		}
		if t == etag {
			return true
		}
	}
	return false
}

// blockSpan widens a byte span to whole blocks: from the start of the block
// holding s.start to the end of the block holding s.end-1, capped at size.
func blockSpan(s span, size int64, blockSize int) span {
	if s.end <= s.start {
		return span{s.start, s.start}
	}
	bs := int64(blockSize)
	end := (s.end-1)/bs*bs + bs
	return span{s.start / bs * bs, min(end, size)}
}
