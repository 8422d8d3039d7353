package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the version of this binary: the module version it was built
// at ("go install …@v1.2.3"), else the commit of the checkout it was built
// from, "+dirty" when that had uncommitted changes, else "devel".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
}

// userAgent is what ferry's requests say they come from, unless -H sets a
// User-Agent: servers and proxies see ferry in their logs, not Go's default.
func userAgent() string { return "ferry/" + version() }

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "usage: ferry version\n")
		return exitUsage
	}
	fmt.Fprintf(stdout, "ferry %s (%s %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
