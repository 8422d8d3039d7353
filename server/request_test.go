package server

import (
	"errors"
	"math"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	tests := []struct {
		spec string
		want span
		err  error
	}{
		{"", span{0, size}, nil},
		{"bytes=0-0", span{0, 1}, nil},
		{"bytes=999-999", span{999, 1000}, nil},
		{"bytes=10-", span{10, size}, nil},
		{"bytes=10-20", span{10, 21}, nil},
		{"bytes=0-99999", span{0, size}, nil},
		{"bytes=0-99999999999999999999999", span{0, size}, nil},
		{"bytes=-1", span{999, 1000}, nil},
		{"bytes=-5000", span{0, size}, nil},
		{"BYTES=1-2", span{1, 3}, nil},
		{"bytes=1-2, ", span{1, 3}, nil},
		{"bytes= 1-2", span{1, 3}, nil},
		{"bytes=1000-", span{}, errUnsatisfiable},
		{"bytes=99999999999999999999-", span{}, errUnsatisfiable},
		{"bytes=-0", span{}, errUnsatisfiable},
		{"bytes=0-1,5-6", span{}, errMultiRange},
		{"bytes=0-1,0-1,0-1", span{}, errMultiRange},
		{"bytes=5-4", span{}, errBadRange},
		{"bytes=-", span{}, errBadRange},
		{"bytes=a-b", span{}, errBadRange},
		{"bytes=1 -2", span{}, errBadRange},
		{"bytes=+1-2", span{}, errBadRange},
		{"bytes=-1-2", span{}, errBadRange},
		{"bytes=١-٢", span{}, errBadRange}, // Arabic-Indic digits
		{"bytes=0x10-", span{}, errBadRange},
		{"items=0-1", span{}, errBadRange},
		{"bytes", span{}, errBadRange},
		{"bytes=", span{}, errBadRange},
		{"bytes=,", span{}, errBadRange},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := parseRange(tt.spec, size)
			if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
				t.Errorf("parseRange(%q, %d) = %v, %v, want %v, %v", tt.spec, size, got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := parseRange("bytes=0-", 0); !errors.Is(err, errUnsatisfiable) {
		t.Errorf("parseRange of an empty file = %v, want errUnsatisfiable", err)
	}
	if _, err := parseRange("bytes=-1", 0); !errors.Is(err, errUnsatisfiable) {
		t.Errorf("parseRange suffix of an empty file = %v, want errUnsatisfiable", err)
	}
}

func TestParseLastEventID(t *testing.T) {
	const size, bs = 10240, 1024
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1024", 1024, true},
		{"9216", 9216, true},
		{"0009216", 9216, true},
		{"10240", 0, false},
		{"1023", 0, false},
		{"-1024", 0, false},
		{"+1024", 0, false},
		{" 1024", 0, false},
		{"1024 ", 0, false},
		{"1e3", 0, false},
		{"abc", 0, false},
		{"１０２４", 0, false}, // full-width digits
		{"99999999999999999999999999", 0, false},
		{"9223372036854775807", 0, false},
	}
	for _, tt := range tests {
		got, err := parseLastEventID(tt.in, size, bs)
		if tt.ok && (err != nil || got != tt.want) || !tt.ok && !errors.Is(err, errBadLastEventID) {
			t.Errorf("parseLastEventID(%q) = %d, %v, want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestMatchesETag(t *testing.T) {
	const etag = "3e8-18a-400"
	tests := []struct {
		header string
		want   bool
	}{
		{`"3e8-18a-400"`, true},
		{`3e8-18a-400`, true},
		{`*`, true},
		{`"x", "3e8-18a-400"`, true},
		{`W/"3e8-18a-400"`, false},
		{`"3e8-18a-401"`, false},
		{`"3e8-18a-400`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := matchesETag(tt.header, etag); got != tt.want {
			t.Errorf("matchesETag(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"a.bin", "a.bin", true},
		{"nested/server%20log.txt", "nested/server log.txt", true},
		{"hello%20w%C3%B6rld%20%C3%B1.txt", "hello wörld ñ.txt", true},
		{"", "", false},
		{"..", "", false},
		{"../etc/passwd", "", false},
		{"a/../../etc/passwd", "", false},
		{"%2e%2e/etc/passwd", "", false},
		{"%2E%2E%2Fetc%2Fpasswd", "", false},
		{"a%2fb", "", false},
		{"..%5cetc", "", false},
		{"..\\etc", "", false},
		{"/etc/passwd", "", false},
		{"%2fetc/passwd", "", false},
		{"a%00b", "", false},
		{"%c0%ae%c0%ae/etc/passwd", "", false}, // overlong UTF-8 dots
		{"a//b", "", false},
		{"./a", "", false},
		{"a/", "", false},
		{"%zz", "", false},
	}
	for _, tt := range tests {
		got, err := cleanPath(tt.in)
		if tt.ok && (err != nil || got != tt.want) || !tt.ok && !errors.Is(err, errNotFound) {
			t.Errorf("cleanPath(%q) = %q, %v, want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestBlockSpan(t *testing.T) {
	tests := []struct {
		in, want span
	}{
		{span{0, 1}, span{0, 1024}},
		{span{1023, 1024}, span{0, 1024}},
		{span{1023, 1025}, span{0, 2048}},
		{span{2500, 2600}, span{2048, 2600}},
		{span{0, 2600}, span{0, 2600}},
		{span{0, 0}, span{0, 0}},
	}
	for _, tt := range tests {
		if got := blockSpan(tt.in, 2600, 1024); got != tt.want {
			t.Errorf("blockSpan(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=5-", "bytes=0-1,2-3", "bytes=99999999999999999999-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, spec string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		s, err := parseRange(spec, size)
		if err != nil {
			return
		}
		if s.start < 0 || s.end > size || s.start >= s.end && spec != "" {
			t.Fatalf("parseRange(%q, %d) = %v: outside the file", spec, size, s)
		}
	})
}

func FuzzParseLastEventID(f *testing.F) {
	f.Add("1024")
	f.Add("-1")
	f.Add("18446744073709551616")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseLastEventID(s, math.MaxInt64/2, 1024)
		if err == nil && (n < 0 || n%1024 != 0) {
			t.Fatalf("parseLastEventID(%q) = %d: not a block offset", s, n)
		}
	})
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a/b", "..", "%2e%2e", "a%2fb", "%c0%ae"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cleanPath(s)
		if err != nil {
			return
		}
		if err := validRel(p); err != nil {
			t.Fatalf("cleanPath(%q) = %q, which validRel refuses: %v", s, p, err)
		}
	})
}
