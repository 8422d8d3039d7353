package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Usage is what a finished child process used.
type Usage struct {
	Seconds float64
	CPU     float64 // user + system seconds
	MaxRSS  int64   // bytes; -1 unknown
	Stdout  []byte
	Stderr  []byte
}

// RunChild runs argv to completion.
func RunChild(ctx context.Context, argv []string) (Usage, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	u := Usage{Seconds: time.Since(start).Seconds(), MaxRSS: -1, Stdout: out.Bytes(), Stderr: errb.Bytes()}
	if err != nil {
		return u, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	u.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = int64(ru.Maxrss)
		if runtime.GOOS != "darwin" { // Linux counts KiB, macOS bytes
			u.MaxRSS <<= 10
		}
	}
	return u, nil
}
