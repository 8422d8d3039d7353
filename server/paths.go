package server

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// cleanPath turns the escaped remainder of a request path into a path
// relative to the served root, refusing every spelling that could leave it:
// encoded slashes and backslashes, backslashes, NUL, invalid or overlong
// UTF-8, absolute paths, and empty, "." or ".." segments. os.Root refuses
// symlinks that lead outside on top of this.
func cleanPath(escaped string) (string, error) {
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return "", fmt.Errorf("%w: encoded slash", errNotFound)
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("%w: bad escape", errNotFound)
	}
	if err := validRel(p); err != nil {
		return "", err
	}
	return p, nil
}

// validRel checks an unescaped path relative to the root.
func validRel(p string) error {
	if p == "" || !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00") || strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: bad path", errNotFound)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: bad path segment", errNotFound)
		}
	}
	return nil
}
