package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// errForbidden is every signed-URL failure alike: wrong, expired or
// tampered signatures get the same answer, which says nothing of which.
var errForbidden = errors.New("forbidden")

// Sign returns the query parameters ("exp" and "sig") that let anyone holding
// them fetch the file at rel (a path below the root), in the version etag,
// until exp, from /sse/, /files/ and /manifest/, and nothing else.
func Sign(key []byte, rel, etag string, exp time.Time) url.Values {
	e := strconv.FormatInt(exp.Unix(), 10)
	return url.Values{"exp": {e}, "sig": {hex.EncodeToString(signature(key, rel, e, etag))}}
}

// signature is HMAC-SHA256 over a versioned, newline-separated message.
func signature(key []byte, rel, exp, etag string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ferry-url-v1\n" + rel + "\n" + exp + "\n" + etag))
	return m.Sum(nil)
}

// checkSignature verifies q's exp and sig for rel in version etag.
func checkSignature(key []byte, q url.Values, rel, etag string, now time.Time) bool {
	exp, sig := q.Get("exp"), q.Get("sig")
	got, err := hex.DecodeString(sig)
	n, perr := parseDigits(exp)
	if err != nil || !perr || len(got) != sha256.Size {
		return false
	}
	// Compare before looking at the expiry, so the time taken does not
	// depend on which part is wrong.
	ok := hmac.Equal(got, signature(key, rel, exp, etag))
	return ok && now.Unix() <= n
}

// accessControlled reports whether requests need a token or a signature.
func (s *Server) accessControlled() bool { return len(s.cfg.Tokens) > 0 || len(s.cfg.SignKey) > 0 }

// authorize guards the file endpoints: a bearer token from cfg.Tokens, or
// (for one file) a signed URL. prefix is the endpoint's path prefix, or ""
// for endpoints that no signature covers (the listing).
func (s *Server) authorize(prefix string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !s.accessControlled() {
				return next(c)
			}
			r := c.Request()
			if tok, ok := bearer(r); ok && s.validToken(tok) {
				return next(c)
			}
			q := r.URL.Query()
			if prefix != "" && len(s.cfg.SignKey) > 0 && q.Has("sig") {
				f, err := s.open(r, prefix)
				if err != nil {
					return errForbidden // never reveal whether the file exists
				}
				f.Close()
				if checkSignature(s.cfg.SignKey, q, f.rel, f.etag, time.Now()) {
					return next(c)
				}
				return errForbidden
			}
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
			return errUnauthenticated
		}
	}
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// validToken compares tok with every configured token in constant time.
func (s *Server) validToken(tok string) bool {
	ok := 0
	for _, t := range s.cfg.Tokens {
		ok |= subtle.ConstantTimeCompare([]byte(tok), []byte(t))
	}
	return ok == 1
}

// cors allows the configured origins to read the file endpoints from a
// page, with the headers a resuming client needs. It never answers "*":
// an allowed origin is echoed, and "*" in the list (allowed only without
// credentials) echoes any origin.
func (s *Server) cors() echo.MiddlewareFunc {
	origins := s.cfg.CORSOrigins
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOriginFunc: func(origin string) (bool, error) {
			return slices.Contains(origins, origin) || !s.cfg.CORSCredentials && slices.Contains(origins, "*"), nil
		},
		AllowMethods:     []string{http.MethodGet, http.MethodHead, http.MethodOptions},
		AllowHeaders:     []string{"Authorization", chunker.HeaderLastEventID, chunker.HeaderRange, "If-Match", "If-Range", "Cache-Control"},
		ExposeHeaders:    []string{"ETag", "Content-Range", "Retry-After"},
		AllowCredentials: s.cfg.CORSCredentials,
		MaxAge:           600,
	})
}
