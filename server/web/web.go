// Package web holds the browser side of Ferry, embedded in the binary: the
// download page served at / and the ES module /ferry.js with its worker.
package web

//go:generate go run ./internal/genwire

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the files served at the top level of the site: index.html at /,
// the rest by name (/ferry.js, …).
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}
