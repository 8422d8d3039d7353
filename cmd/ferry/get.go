package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/client"
)

// headerList is a repeatable -H 'Name: value' flag.
type headerList struct{ h http.Header }

func (l *headerList) String() string { return "" }

func (l *headerList) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("header %q is not 'Name: value'", s)
	}
	if l.h == nil {
		l.h = http.Header{}
	}
	l.h.Add(name, strings.TrimSpace(value))
	return nil
}

// clientFlags are the flags shared by get and verify.
type clientFlags struct {
	headers        headerList
	retries        int
	idleTimeout    time.Duration
	connectTimeout time.Duration
	maxTime        time.Duration
	jsonOut        bool
	cacert         string
	insecure       bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.headers, "H", "extra request header 'Name: value' (repeatable); FERRY_TOKEN sets a bearer token")
	fs.IntVar(&c.retries, "retries", 5, "failed attempts in a row before giving up (0: none)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 60*time.Second, "a connection silent this long counts as cut; twice in a row is a timeout")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 30*time.Second, "time allowed to connect")
	fs.DurationVar(&c.maxTime, "max-time", 0, "time allowed for the whole download (0: unlimited)")
	fs.BoolVar(&c.jsonOut, "json", false, "print a JSON summary on stdout")
	fs.StringVar(&c.cacert, "cacert", "", "trust the CA certificates in this PEM file (a private CA), beside the system's")
	fs.BoolVar(&c.insecure, "insecure", false, "accept any server certificate (blocks are still verified; the server is not authenticated)")
}

// client returns the Client the flags describe; warnings go to stderr.
func (c *clientFlags) client(stderr io.Writer) (*client.Client, error) {
	retries := c.retries
	if retries == 0 {
		retries = -1 // the library's zero value means its default
	}
	tlsConfig, err := c.tlsConfig(stderr)
	if err != nil {
		return nil, err
	}
	header := c.headers.h.Clone()
	if header == nil {
		header = http.Header{}
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", userAgent())
	}
	return &client.Client{
		Header: header, Token: os.Getenv("FERRY_TOKEN"), TLSConfig: tlsConfig,
		Retries: retries, IdleTimeout: c.idleTimeout, ConnectTimeout: c.connectTimeout,
	}, nil
}

// tlsConfig returns the TLS settings of --cacert and --insecure, nil for
// the defaults.
func (c *clientFlags) tlsConfig(stderr io.Writer) (*tls.Config, error) {
	if c.cacert == "" && !c.insecure {
		return nil, nil
	}
	cfg := &tls.Config{}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert: %s holds no PEM certificate", c.cacert)
		}
		cfg.RootCAs = pool
	}
	if c.insecure {
		fmt.Fprintln(stderr, "ferry: warning: --insecure: the server's certificate is not checked; anyone on the path can pose as the server")
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// parseInterleaved parses flags that may come before or after positional
// arguments (ferry get URL -o FILE), returning the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, int) {
	var pos []string
	for {
		if code := parseFlags(fs, args, stderr); code >= 0 {
			return nil, code
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, -1
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), -1
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry get", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	out := fs.String("o", "", "output file (default: the file's name, in this folder)")
	force := fs.Bool("force", false, "replace an existing output file")
	strict := fs.Bool("strict", false, "fail (exit 7) if the remote file changed instead of restarting against it")
	checksum := fs.String("checksum", "", "fail (exit 6) unless the result has this digest, sha256:HEX")
	withSHA := fs.Bool("sha256", false, "also compute the file's SHA-256, check it against the server's and print it (implied by --json and --checksum; costs about 0.6 CPU-s per GiB)")
	parallel := fs.Int("parallel", 1, "streams fetching missing blocks at once")
	progressFlag := fs.String("progress", "auto", "progress on stderr: auto, bar, line, json or none")
	noCompression := fs.Bool("no-compression", false, "ask for uncompressed blocks")
	follow := fs.Bool("follow", false, "follow a file still being written: take each block as it appears, finish when the writer is done (the server waits up to its --follow-wait for a file that does not exist yet)")
	var seeds []string
	fs.Func("seed", "copy the blocks this older copy holds, at any offset, and fetch only the rest (repeatable; with --force, an existing -o FILE is one too)", func(p string) error {
		seeds = append(seeds, p)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry get URL [-o FILE] [flags]\n\nURL is the /sse/, /files/ or /manifest/ URL of a file.")
		fs.PrintDefaults()
	}
	pos, code := parseInterleaved(fs, args, stderr)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	rawURL := pos[0]
	if *out == "" {
		*out = defaultName(rawURL)
		if *out == "" {
			fmt.Fprintf(stderr, "ferry get: cannot name the output after %q; pass -o FILE\n", rawURL)
			return exitUsage
		}
	}
	mode, err := progressMode(*progressFlag, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ferry get: %v\n", err)
		return exitUsage
	}
	if *parallel < 1 || *parallel > client.MaxParallel {
		fmt.Fprintf(stderr, "ferry get: --parallel must be between 1 and %d\n", client.MaxParallel)
		return exitUsage
	}
	rep := newReporter(mode, stderr)
	opts := client.Options{
		Force: *force, Strict: *strict, Checksum: *checksum, MaxTime: cf.maxTime,
		Parallel: *parallel, NoCompression: *noCompression, Seeds: seeds, Follow: *follow,
		SHA256: *withSHA || cf.jsonOut, // --json reports it; --checksum implies it in the library
	}
	if mode != "none" {
		opts.OnProgress, opts.Logf = rep.progress, rep.logf
	}
	c, err := cf.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ferry get: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	res, err := c.Download(ctx, rawURL, *out, opts)
	code = exitCode(ctx, err)
	if err != nil {
		reportFailure(stdout, stderr, cf.jsonOut, err, code, *out, rawURL)
		return code
	}
	if mode != "none" && mode != "json" {
		reportDone(stderr, res)
	}
	if cf.jsonOut {
		writeJSON(stdout, res)
	}
	return exitOK
}

// reportFailure tells why a download to out failed, and with --json says
// it on stdout too.
func reportFailure(stdout, stderr io.Writer, jsonOut bool, err error, code int, out, rawURL string) {
	var ie *client.InterruptedError
	switch {
	case errors.As(err, &ie) && ie.Partial != "":
		fmt.Fprintf(stderr, "ferry get: interrupted; partial download kept in %s (run the same command to resume)\n", ie.Partial)
	case code == exitInterrupted || code == exitTerminated:
		fmt.Fprintln(stderr, "ferry get: interrupted before any data arrived")
	default:
		fmt.Fprintf(stderr, "ferry get: %v\n", err)
	}
	if jsonOut {
		writeJSON(stdout, map[string]any{"path": out, "url": rawURL, "error": err.Error(), "exit_code": code})
	}
}

// reportDone prints the line that ends a download for people.
func reportDone(stderr io.Writer, res *client.Result) {
	verb := "downloaded"
	if res.AlreadyComplete {
		verb = "already complete"
	}
	digest := "xxh3-128 " + res.XXH3128
	if res.SHA256 != "" {
		digest = "sha256 " + res.SHA256
	}
	seeded := ""
	if res.BytesSeeded > 0 {
		seeded = fmt.Sprintf(", %s copied from seeds", humanBytes(res.BytesSeeded))
	}
	fmt.Fprintf(stderr, "ferry: %s %s (%s%s) in %.1fs, verified %s\n", verb, res.Path, humanBytes(res.Size), seeded, res.Seconds, digest)
}

func writeJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Write(append(b, '\n'))
}

// defaultName names the output after the last segment of the file's path.
func defaultName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	name := path.Base(u.Path)
	if name == "." || name == "/" || name == ".." || name == "" {
		return ""
	}
	return name
}

// exitCode maps a download's error to the documented exit codes.
func exitCode(ctx context.Context, err error) int {
	var he *client.HTTPError
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		return interruptCode(ctx)
	case errors.Is(err, client.ErrUsage):
		return exitUsage
	case errors.Is(err, client.ErrExists):
		return exitExists
	case errors.Is(err, client.ErrRemoteChanged):
		return exitChanged
	case errors.Is(err, client.ErrIntegrity):
		return exitIntegrity
	case errors.Is(err, client.ErrTimeout):
		return exitTimeout
	case errors.Is(err, client.ErrDisk):
		return exitDisk
	case errors.As(err, &he), errors.Is(err, client.ErrProtocol):
		return exitHTTP
	case errors.Is(err, client.ErrNetwork):
		return exitNetwork
	}
	return exitFailure
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry verify", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry verify FILE URL [flags]\n\nChecks FILE against the server's manifest and lists the blocks that differ.")
		fs.PrintDefaults()
	}
	pos, code := parseInterleaved(fs, args, stderr)
	if code >= 0 {
		return code
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitUsage
	}
	c, err := cf.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ferry verify: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	rep, err := c.Verify(ctx, pos[0], pos[1], client.VerifyOptions{})
	code = exitCode(ctx, err)
	if cf.jsonOut && rep != nil {
		writeJSON(stdout, rep)
	}
	switch {
	case rep != nil && rep.OK:
		fmt.Fprintf(stderr, "ferry verify: %s matches (%d blocks, sha256 %s)\n", rep.Path, rep.Blocks, rep.SHA256)
	case rep != nil:
		if rep.Size != rep.Remote {
			fmt.Fprintf(stderr, "ferry verify: %s has %d bytes, the server's file %d\n", rep.Path, rep.Size, rep.Remote)
		}
		for _, b := range rep.BadBlocks {
			fmt.Fprintf(stdout, "bad block %d\n", b)
		}
		fmt.Fprintf(stderr, "ferry verify: %v\n", err)
	default:
		fmt.Fprintf(stderr, "ferry verify: %v\n", err)
	}
	return code
}
