// Command ferry serves files as resumable, verified Server-Sent Event
// streams and downloads them.
//
//	ferry serve [--root DIR] [--addr 127.0.0.1:8080] [--block-size 256KiB]
//	ferry get URL [-o FILE] [--parallel N] [--checksum sha256:HEX] [--json]
//	ferry verify FILE URL
//	ferry gen --size 1GiB [--seed 1] [--kind random|text] -o FILE
//	ferry version
//
// Run "ferry help" or "ferry COMMAND -h" for the flags of each command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Exit codes, documented in README.md.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitHTTP        = 3
	exitNetwork     = 4
	exitTimeout     = 5
	exitIntegrity   = 6
	exitChanged     = 7
	exitDisk        = 9
	exitExists      = 11
	exitInterrupted = 130
	exitTerminated  = 143
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "serve a folder as resumable SSE streams", runServe},
		{"get", "download a file, resuming and verifying every block", runGet},
		{"verify", "check a local file against the server's manifest", runVerify},
		{"sign", "print a signed, expiring URL for one file", runSign},
		{"manifest", "write FILE.ferry-manifest beside each file, so that servers over shared storage need not hash it", runManifest},
		{"demo", "serve the sample files and download them through a cutting proxy", runDemo},
		{"gen", "write a deterministic sample file (random or text)", runGen},
		{"bench", "measure ferry against plain HTTP on this machine", runBench},
		{"version", "print ferry's version", runVersion},
	}
}

func main() {
	ctx, stop := signalContext()
	stopProfile := startProfile()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the process to
// $FERRY_CPUPROFILE-COMMAND-PID.pprof when that is set (ferry bench
// --profile sets it for its children), and returns the function that ends
// it.
func startProfile() func() {
	prefix := os.Getenv("FERRY_CPUPROFILE")
	if prefix == "" || len(os.Args) < 2 {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-%s-%d.pprof", prefix, os.Args[1], os.Getpid()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferry: FERRY_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// signalContext is cancelled by SIGINT or SIGTERM; the cause records which.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() { // exits at the first signal or when stopped
		select {
		case sig := <-ch:
			cancel(signalError{sig.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
}

type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return "interrupted by " + e.sig.String() }

// interruptCode returns the conventional exit code for the signal that
// cancelled ctx: 130 for SIGINT, 143 for SIGTERM.
func interruptCode(ctx context.Context) int {
	var se signalError
	if errors.As(context.Cause(ctx), &se) && se.sig == syscall.SIGTERM {
		return exitTerminated
	}
	return exitInterrupted
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		return runVersion(ctx, nil, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "ferry: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ferry COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'ferry COMMAND -h' for a command's flags.")
}

// parseFlags parses args into fs, reporting usage errors the same way for
// every command. It returns a non-negative exit code when the command
// should stop.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return -1
}
