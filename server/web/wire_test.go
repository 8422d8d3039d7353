package web_test

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-dev/ferry/server/web"
	"github.com/ferry-dev/ferry/server/web/internal/wirejs"
)

// TestWireJSUpToDate checks that the wire.js served (the embedded copy of
// static/wire.js) is what the generator writes from the Go protocol today.
func TestWireJSUpToDate(t *testing.T) {
	want, err := wirejs.Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs.ReadFile(web.FS(), "wire.js")
	if err != nil {
		t.Fatalf("wire.js is not served: %v; run go generate ./server/web", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("static/wire.js differs from what the generator writes (-committed +generated); run go generate ./server/web\n%s",
			cmp.Diff(strings.Split(string(got), "\n"), strings.Split(string(want), "\n")))
	}
}
