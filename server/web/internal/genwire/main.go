// Command genwire writes static/wire.js, the protocol's names for the
// browser module (see package wirejs). It runs from server/web:
//
//	go generate ./server/web
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ferry-dev/ferry/server/web/internal/wirejs"
)

func main() {
	out := flag.String("o", "static/wire.js", "the file to write")
	flag.Parse()
	b, err := wirejs.Generate()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genwire:", err)
		os.Exit(1)
	}
}
