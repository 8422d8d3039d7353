package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ferry-dev/ferry/chunker"
	harness "github.com/ferry-dev/ferry/internal/bench"
	"github.com/ferry-dev/ferry/internal/realparts"
	"github.com/ferry-dev/ferry/server/servertest"
)

// runBench measures Ferry against a plain HTTP download of the same file
// from the same server, in one run, and prints a table (docs/PERFORMANCE.md
// keeps one). The server and every client run as child processes, so that
// the CPU time and peak memory of each are its own: a fresh "ferry serve"
// for each case, and "ferry get", "curl" or "ferry bench fetch" (a plain Go
// GET of /files/ written to a file and synced, as ferry get does).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "packet-delay" {
		return runPacketDelay(ctx, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "fetch" {
		return runBenchFetch(ctx, args[1:], stderr)
	}
	fs := flag.NewFlagSet("ferry bench", flag.ContinueOnError)
	size := byteSize(1 << 30)
	fs.Var(&size, "size", "size of each data file")
	blockSize := byteSize(chunker.DefaultBlockSize)
	fs.Var(&blockSize, "block-size", "the server's block size")
	dir := fs.String("dir", "", "folder for the data files and downloads (default: a temporary folder, removed); data files of the right size are reused")
	only := fs.String("only", "", "comma-separated case names or patterns, e.g. 'random/*/p1,slow' (default: all); the baselines they need run too")
	rate := byteRate(50 << 20)
	fs.Var(&rate, "rate", "bandwidth of the throttled link, per connection")
	cuts := fs.Int("cuts", 8, "connection cuts in the resume case (0: no resume case)")
	repeat := fs.Int("repeat", 1, "runs of each case, interleaved; the fastest is shown")
	list := fs.Bool("list", false, "print the case names and exit")
	links := fs.String("link", "", "comma-separated shaped links to measure on instead (dsl, office, wan, mobile, shaped): server and clients in two network namespaces (needs root)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry bench [--size 1GiB] [--block-size 256KiB] [--dir DIR] [--only CASES] [--rate 50MiB/s] [--cuts 8] [--repeat 1]")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 || *cuts < 0 || *repeat < 1 || size < 1 {
		fs.Usage()
		return exitUsage
	}
	if err := chunker.CheckBlockSize(int(blockSize)); err != nil {
		fmt.Fprintf(stderr, "ferry bench: --block-size %s: must be between 1KiB and 16MiB\n", blockSize.String())
		return exitUsage
	}
	_, curlErr := exec.LookPath("curl")
	weed, weedErr := realparts.WeedPath()
	all := benchCases(curlErr == nil, *cuts, weedErr == nil)
	if *list {
		for _, c := range all {
			fmt.Fprintln(stdout, c.name)
		}
		return exitOK
	}
	cases, err := selectCases(all, *only)
	if err != nil && *links == "" {
		fmt.Fprintf(stderr, "ferry bench: --only: %v (see --list)\n", err)
		return exitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "ferry bench: %v\n", err)
		return exitFailure
	}

	b := &bench{exe: exe, size: int64(size), blockSize: int(blockSize), rate: int64(rate), log: stderr, weed: weed}
	defer func() {
		if b.store != nil {
			b.store.Stop()
		}
	}()
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "ferry-bench-"); err != nil {
			fmt.Fprintf(stderr, "ferry bench: %v\n", err)
			return exitDisk
		}
		defer os.RemoveAll(*dir)
	}
	b.data, b.out, b.cache = filepath.Join(*dir, "data"), filepath.Join(*dir, "out"), filepath.Join(*dir, "cache")
	if *links != "" {
		fmt.Fprintf(stdout, "command: ferry %s\n", strings.Join(append([]string{"bench"}, args...), " "))
		if err := b.runLinks(ctx, strings.Split(*links, ","), *only, *repeat, stdout); err != nil {
			return b.fail(ctx, err)
		}
		return exitOK
	}
	loadStart := harness.LoadAverage()
	if err := b.prepare(ctx, cases); err != nil {
		return b.fail(ctx, err)
	}
	if err := b.warmManifests(ctx, cases); err != nil {
		return b.fail(ctx, err)
	}

	results, err := b.rounds(ctx, cases, *repeat)
	if err != nil {
		return b.fail(ctx, err)
	}
	report(stdout, reportInput{
		command: "ferry " + strings.Join(append([]string{"bench"}, args...), " "),
		size:    b.size, blockSize: b.blockSize, rate: b.rate, repeat: *repeat, curl: curlErr == nil,
		loadStart: loadStart, loadEnd: harness.LoadAverage(), cases: cases, results: results,
	})
	return exitOK
}

// rounds runs every case once per round, so that repeats of a case are
// spread over the run like the cases they are compared with, and keeps the
// fastest run of each.
func (b *bench) rounds(ctx context.Context, cases []benchCase, repeat int) (map[string]benchResult, error) {
	results := make(map[string]benchResult)
	for round := range repeat {
		for i, c := range cases {
			r, err := b.run(ctx, c)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(b.log, "ferry bench: round %d/%d, case %d/%d: %-32s %7.2f s %8.1f MiB/s\n",
				round+1, repeat, i+1, len(cases), c.name, r.seconds, float64(b.size)/r.seconds/(1<<20))
			if best, ok := results[c.name]; !ok || r.seconds < best.seconds {
				results[c.name] = r
			}
		}
	}
	return results, nil
}

// byteRate is a flag.Value for a bandwidth such as 50MiB/s (or 50MiB, 50MB/s:
// sizes are powers of 1024 as in every size flag).
type byteRate int64

func (r *byteRate) String() string { return formatSize(int64(*r)) + "/s" }

func (r *byteRate) Set(s string) error {
	n, err := parseSize(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("rate %q must be positive", s)
	}
	*r = byteRate(n)
	return nil
}

// benchCase is one measured download.
type benchCase struct {
	name     string
	kind     string // data: "random" (incompressible) or "text" (log lines)
	client   string // "http" (ferry bench fetch), "curl" or "ferry" (ferry get)
	codec    string // ferry: "identity" (--no-compression) or "auto" (the default: s2, zstd or none, per block)
	parallel int    // ferry: --parallel
	slow     bool   // through a proxy throttled to --rate
	cuts     int    // through a proxy that cuts the connection this many times
	sha256   bool   // ferry: --sha256, the whole-file SHA-256 that --json and --checksum imply
	seed     bool   // ferry: --seed, an older version of the file (benchseed.go)
	// origin "http": the client downloads from a second server whose
	// --origin is the first one's /files/ (or "s3": a SeaweedFS bucket);
	// cache "none" (--cache-max 0), "cold" (an empty block cache) or
	// "warm" (filled by an untimed download first).
	origin, cache string
}

// baseline names the plain HTTP case this one is compared with.
func (c benchCase) baseline() string {
	if c.origin != "" || c.seed {
		return c.kind + "/ferry/identity/p1" // the same client, from a local folder, without a seed
	}
	if c.slow {
		return "slow/" + c.kind + "/http"
	}
	return c.kind + "/http"
}

// benchCases lists every case, in the order they run.
func benchCases(curl bool, cuts int, s3 bool) []benchCase {
	var cs []benchCase
	for _, kind := range []string{"random", "text"} {
		cs = append(cs, benchCase{name: kind + "/http", kind: kind, client: "http"})
		if curl {
			cs = append(cs, benchCase{name: kind + "/curl", kind: kind, client: "curl"})
		}
		for _, codec := range []string{"identity", "auto"} {
			for _, p := range []int{1, 2, 4} {
				cs = append(cs, benchCase{name: fmt.Sprintf("%s/ferry/%s/p%d", kind, codec, p), kind: kind, client: "ferry", codec: codec, parallel: p})
			}
			cs = append(cs, benchCase{name: fmt.Sprintf("%s/ferry-sha256/%s/p1", kind, codec), kind: kind, client: "ferry", codec: codec, parallel: 1, sha256: true})
		}
	}
	cs = append(cs,
		benchCase{name: "slow/text/http", kind: "text", client: "http", slow: true},
		benchCase{name: "slow/text/ferry/auto/p1", kind: "text", client: "ferry", codec: "auto", parallel: 1, slow: true},
		benchCase{name: "slow/text/ferry/identity/p1", kind: "text", client: "ferry", codec: "identity", parallel: 1, slow: true},
	)
	origins := []string{"http"}
	if s3 {
		origins = append(origins, "s3")
	}
	for _, o := range origins {
		for _, cache := range []string{"none", "cold", "warm"} {
			cs = append(cs, benchCase{name: "origin/random/" + o + "/" + cache, kind: "random", client: "ferry", codec: "identity", parallel: 1, origin: o, cache: cache})
		}
	}
	cs = append(cs, benchCase{name: "seed/random/ferry/identity/p1", kind: "random", client: "ferry", codec: "identity", parallel: 1, seed: true})
	if cuts > 0 {
		cs = append(cs, benchCase{name: "resume/random/ferry/auto/p1", kind: "random", client: "ferry", codec: "auto", parallel: 1, cuts: cuts})
	}
	return cs
}

// selectCases returns the cases that match the comma-separated patterns of
// only, and the baselines they are compared with, in the order of all. A
// pattern matches a name equal to it, a name below it ("slow" matches
// "slow/text/http") or a name it matches as a path.Match glob.
func selectCases(all []benchCase, only string) ([]benchCase, error) {
	if strings.TrimSpace(only) == "" {
		return all, nil
	}
	want := make(map[string]bool)
	for _, pat := range strings.Split(only, ",") {
		pat = strings.Trim(strings.TrimSpace(pat), "/")
		if pat == "" {
			continue
		}
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", pat, err)
		}
		n := 0
		for _, c := range all {
			if matchCase(pat, c.name) {
				want[c.name], want[c.baseline()] = true, true
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%q matches no case", pat)
		}
	}
	var cs []benchCase
	for _, c := range all {
		if want[c.name] {
			cs = append(cs, c)
		}
	}
	return cs, nil
}

// matchCase says whether the --only pattern pat names the case name.
func matchCase(pat, name string) bool {
	ok, _ := path.Match(pat, name)
	return ok || name == pat || strings.HasPrefix(name, pat+"/")
}

// bench is one run of the benchmark.
type bench struct {
	exe       string // the ferry binary the children run
	size      int64
	blockSize int
	rate      int64
	data      string // the folder served: random.bin, text.bin
	out       string // the folder the clients write to
	cache     string // the servers' --cache-dir
	log       io.Writer
	weed      string               // the SeaweedFS binary, for the s3 origin cases
	store     *realparts.SeaweedFS // started by the first s3 case
}

func (b *bench) fail(ctx context.Context, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintln(b.log, "ferry bench: interrupted")
		return interruptCode(ctx)
	}
	fmt.Fprintf(b.log, "ferry bench: %v\n", err)
	return exitFailure
}

func kinds(cases []benchCase) []string {
	var ks []string
	for _, c := range cases {
		if !slices.Contains(ks, c.kind) {
			ks = append(ks, c.kind)
		}
	}
	return ks
}

// prepare writes the data files, unless files of the right size are there,
// and reads them once so that they are in the page cache.
func (b *bench) prepare(ctx context.Context, cases []benchCase) error {
	for _, d := range []string{b.data, b.out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, kind := range kinds(cases) {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(b.data, kind+".bin")
		if info, err := os.Stat(p); err != nil || info.Size() != b.size {
			fmt.Fprintf(b.log, "ferry bench: writing %s (%s, seed 1)\n", p, formatSize(b.size))
			if err := writeSampleFile(p, kind, b.size); err != nil {
				return err
			}
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	for _, c := range cases {
		if c.seed {
			if err := b.writeSeed(c.kind); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeSampleFile(p, kind string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := writeSample(f, kind, 1, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startServer starts a "ferry serve" of the data files.
func (b *bench) startServer(ctx context.Context) (*harness.Server, error) {
	return harness.StartServer(ctx, b.exe, b.cache, b.blockSize, "--root", b.data)
}

// warmManifests has a server hash each file into the manifest cache on disk
// that every server of the run shares, as a server would have for a file it
// served before: no case pays for the first hashing.
func (b *bench) warmManifests(ctx context.Context, cases []benchCase) error {
	srv, err := b.startServer(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	for _, kind := range kinds(cases) {
		if err := harness.GetDiscard(ctx, srv.Base()+chunker.PathManifest+kind+".bin"); err != nil {
			return err
		}
	}
	return nil
}

// benchResult is what one run of a case measured.
type benchResult struct {
	seconds   float64 // wall time of the client process
	serverCPU float64 // CPU seconds (user+system) of the server during the case
	clientCPU float64 // CPU seconds (user+system) of the client process
	serverRSS int64   // peak RSS of the case's server process, bytes; -1 unknown
	clientRSS int64   // peak RSS of the client process, bytes; -1 unknown
	wire      int64   // response body bytes the server sent, from its access log
	fetched   int64   // ferry get's bytes_fetched
	cuts      int     // ferry get's reconnects
	proxied   int64   // bytes through the proxy, server to client
	uncut     int64   // resume: bytes through a proxy for an uncut stream
	seedRead  float64 // seed: seconds to read the seed once
	seedCopy  float64 // seed: seconds to copy the seed to a file and sync it
}

// run runs case c once.
func (b *bench) run(ctx context.Context, c benchCase) (benchResult, error) {
	var r benchResult
	file := c.kind + ".bin"
	out := filepath.Join(b.out, file)
	clean := func() {
		// Synced first, so that no case leaves the next one dirty pages to
		// write back (curl does not sync; ferry get and fetch do).
		if f, err := os.OpenFile(out, os.O_RDWR, 0); err == nil {
			f.Sync()
			f.Close()
		}
		for _, p := range []string{out, out + ".part", out + ".ferry-state"} {
			os.Remove(p)
		}
	}
	clean()
	defer clean()

	if c.cuts > 0 {
		var err error
		if r.uncut, err = b.uncutBytes(ctx, file, c.codec); err != nil {
			return r, err
		}
	}
	srv, err := b.startServer(ctx)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	if c.origin != "" {
		if srv, err = b.startFront(ctx, c, srv, file, out); err != nil {
			return r, err
		}
		defer srv.Stop()
		clean()
	}
	addr := srv.Addr
	var proxy *servertest.Proxy
	if c.slow || c.cuts > 0 {
		plan := func(int) servertest.Fault { return servertest.Fault{BytesPerSecond: b.rate} }
		if c.cuts > 0 {
			plan = cutPlan(c.cuts, r.uncut, 1)
		}
		if proxy, err = servertest.NewProxy(addr, plan); err != nil {
			return r, err
		}
		defer proxy.Close()
		addr = proxy.Addr
	}
	argv := b.argv(c, "http://"+addr, file, out)
	if c.seed {
		if r.seedRead, err = b.readSeed(ctx, c.kind); err != nil {
			return r, err
		}
		if r.seedCopy, err = b.copySeed(ctx, c.kind, out); err != nil {
			return r, err
		}
	}
	if err := srv.Sync(ctx); err != nil {
		return r, err
	}
	cpu0, _ := srv.Sample()
	wire0 := srv.Wire.Load()
	u, err := harness.RunChild(ctx, argv)
	if err != nil {
		return r, fmt.Errorf("%s: %w", c.name, err)
	}
	if err := srv.Sync(ctx); err != nil { // the server has logged the case's requests
		return r, err
	}
	cpu1, hwm := srv.Sample()
	r.seconds, r.clientCPU, r.clientRSS = u.Seconds, u.CPU, u.MaxRSS
	r.serverCPU, r.serverRSS = cpu1-cpu0, hwm
	r.wire = srv.Wire.Load() - wire0
	if proxy != nil {
		r.proxied = proxy.BytesDown()
	}
	if info, err := os.Stat(out); err != nil || info.Size() != b.size {
		return r, fmt.Errorf("%s: %s is not the %d bytes of %s", c.name, out, b.size, file)
	}
	if c.client == "ferry" {
		p, err := lastProgress(u.Stderr)
		if err != nil || p.Phase != "done" || p.Size != b.size {
			return r, fmt.Errorf("%s: ferry get --progress json ended without a done line (%v): %q", c.name, err, u.Stderr)
		}
		r.fetched, r.cuts = p.Fetched, p.Reconnects
	}
	return r, nil
}

// startFront starts the server of an origin case: its origin is origin's
// /files/, its block cache empty, or (warm) filled by one untimed download.
func (b *bench) startFront(ctx context.Context, c benchCase, origin *harness.Server, file, out string) (*harness.Server, error) {
	cache := filepath.Join(filepath.Dir(b.cache), "origin-cache")
	if err := os.RemoveAll(cache); err != nil {
		return nil, err
	}
	source := []string{"--origin", origin.Base() + chunker.PathFiles}
	if c.origin == "s3" {
		endpoint, err := b.s3Store(ctx, c.kind)
		if err != nil {
			return nil, err
		}
		source = []string{"--origin", "s3://bench/", "--s3-endpoint", endpoint}
	}
	if c.cache == "none" {
		source = append(source, "--cache-max", "0")
	}
	// Its manifest cache is warmed as the local server's is, so that no
	// case pays for the first hashing (a whole-file SHA-256 took 40 % of
	// the server's samples); then its block cache is emptied again.
	front, err := harness.StartServer(ctx, b.exe, cache, b.blockSize, source...)
	if err != nil {
		return nil, err
	}
	err = harness.GetDiscard(ctx, front.Base()+chunker.PathManifest+file)
	front.Stop()
	if err != nil {
		return nil, fmt.Errorf("%s: warming the manifest cache: %w", c.name, err)
	}
	if err := os.RemoveAll(filepath.Join(cache, "blocks")); err != nil {
		return nil, err
	}
	if front, err = harness.StartServer(ctx, b.exe, cache, b.blockSize, source...); err != nil {
		return nil, err
	}
	if c.cache == "warm" {
		if _, err := harness.RunChild(ctx, b.argv(c, front.Base(), file, out)); err != nil {
			front.Stop()
			return nil, fmt.Errorf("%s: warming the block cache: %w", c.name, err)
		}
	}
	// The blocks written so far are on disk before the timed run, which
	// would otherwise share the disk with their writeback.
	front.Sync(ctx)
	syscall.Sync()
	return front, nil
}

// s3Store starts SeaweedFS on first use, with the data file of kind in
// its bucket "bench", and returns its S3 endpoint. The servers it starts
// inherit the store's credentials through the AWS variables.
func (b *bench) s3Store(ctx context.Context, kind string) (string, error) {
	if b.store == nil {
		dir := filepath.Join(filepath.Dir(b.cache), "weed")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		fmt.Fprintf(b.log, "ferry bench: starting SeaweedFS (%s)\n", b.weed)
		w, err := realparts.LaunchSeaweedFS(b.weed, dir)
		if err != nil {
			return "", err
		}
		b.store = w
		if err := w.CreateBucket(ctx, "bench"); err != nil {
			return "", fmt.Errorf("SeaweedFS: %w", err)
		}
		os.Setenv("AWS_ACCESS_KEY_ID", w.AccessKey)
		os.Setenv("AWS_SECRET_ACCESS_KEY", w.SecretKey)
		os.Setenv("AWS_REGION", "us-east-1")
	}
	key := kind + ".bin"
	if _, err := b.store.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bench"), Key: &key}); err != nil {
		f, err := os.Open(filepath.Join(b.data, key))
		if err != nil {
			return "", err
		}
		defer f.Close()
		fmt.Fprintf(b.log, "ferry bench: uploading %s to SeaweedFS\n", key)
		if err := b.store.Put(ctx, "bench", key, f, b.size); err != nil {
			return "", fmt.Errorf("SeaweedFS: %w", err)
		}
	}
	return b.store.S3, nil
}

// argv is the command line of case c's client, downloading file from the
// server at base to out.
func (b *bench) argv(c benchCase, base, file, out string) []string {
	switch c.client {
	case "http":
		return []string{b.exe, "bench", "fetch", base + chunker.PathFiles + file, out}
	case "curl":
		return []string{"curl", "-sSf", "-o", out, base + chunker.PathFiles + file}
	}
	// Not --json, which implies --sha256: the progress lines tell the
	// bytes fetched and the reconnects.
	argv := []string{b.exe, "get", base + chunker.PathSSE + file, "-o", out, "--progress", "json", "--parallel", strconv.Itoa(c.parallel)}
	if c.codec == "identity" {
		argv = append(argv, "--no-compression")
	}
	if c.sha256 {
		argv = append(argv, "--sha256")
	}
	if c.seed {
		argv = append(argv, "--seed", b.seedPath(c.kind))
	}
	return argv
}

// lastProgress returns the last progress line of ferry get --progress json.
func lastProgress(stderr []byte) (progressLine, error) {
	var last progressLine
	for line := range bytes.SplitSeq(stderr, []byte("\n")) {
		var l progressLine
		if json.Unmarshal(line, &l) == nil && l.Event == "progress" {
			last = l
		}
	}
	if last.Event == "" {
		return last, errors.New("no progress line")
	}
	return last, nil
}

// uncutBytes returns the bytes a proxy forwards for one uncut stream of
// file with the codec ferry get asks for: the reference of the resume case.
func (b *bench) uncutBytes(ctx context.Context, file, codec string) (int64, error) {
	srv, err := b.startServer(ctx)
	if err != nil {
		return 0, err
	}
	defer srv.Stop()
	p, err := servertest.NewProxy(srv.Addr, nil)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	u := "http://" + p.Addr + chunker.PathSSE + file
	if codec != "identity" {
		u += "?encoding=s2,zstd,gzip"
	}
	if err := harness.GetDiscard(ctx, u); err != nil {
		return 0, err
	}
	return p.BytesDown(), nil
}

// cutPlan returns a proxy plan that cuts the first n connections so that the
// cuts fall at n points drawn uniformly (from seed) over a stream of total
// bytes: each connection is cut after the distance from the previous point.
// A resumed connection repeats the start of a block, so later cuts drift a
// little past their points; connections after the n-th are not cut.
func cutPlan(n int, total int64, seed uint64) func(int) servertest.Fault {
	r := rand.New(rand.NewPCG(seed, 0xc075))
	at := make([]int64, n)
	for i := range at {
		at[i] = 1 + r.Int64N(max(total-1, 1))
	}
	slices.Sort(at)
	gaps := make([]int64, n)
	prev := int64(0)
	for i, a := range at {
		gaps[i], prev = max(a-prev, 1), a
	}
	return func(conn int) servertest.Fault {
		if conn < n {
			return servertest.Fault{CutAt: gaps[conn]}
		}
		return servertest.Fault{}
	}
}

// runBenchFetch is the plain HTTP baseline: "ferry bench fetch URL FILE"
// GETs URL with net/http, copies the body to FILE with io.Copy and syncs
// it, the same durability ferry get provides.
func runBenchFetch(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: ferry bench fetch URL FILE")
		return exitUsage
	}
	if err := harness.FetchPlain(ctx, args[0], args[1]); err != nil {
		fmt.Fprintf(stderr, "ferry bench fetch: %v\n", err)
		return exitFailure
	}
	return exitOK
}

type reportInput struct {
	command            string
	size               int64
	blockSize          int
	rate               int64
	repeat             int
	curl               bool
	loadStart, loadEnd string
	cases              []benchCase
	results            map[string]benchResult
}

// report prints the table and the resume and target summaries.
func report(w io.Writer, in reportInput) {
	gib := float64(in.size) / (1 << 30)
	mib := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 0, 64)
	}
	perGiB := func(s float64) string {
		if s < 0 {
			return "-"
		}
		return strconv.FormatFloat(s/gib, 'f', 2, 64)
	}
	fmt.Fprintf(w, "command: %s\n", in.command)
	fmt.Fprintf(w, "machine: %s\n", harness.Machine())
	fmt.Fprintf(w, "load:    %s at start, %s at end (1, 5, 15 min)\n", in.loadStart, in.loadEnd)
	best := ""
	if in.repeat > 1 {
		best = fmt.Sprintf(", fastest of %d runs", in.repeat)
	}
	fmt.Fprintf(w, "files:   %s each, block size %s, slow link %s per connection%s\n\n",
		formatSize(in.size), formatSize(int64(in.blockSize)), humanBytes(in.rate)+"/s", best)
	fmt.Fprintf(w, "%-32s %7s %8s %6s %6s %8s %8s %8s %8s\n",
		"case", "s", "MiB/s", "×http", "wire", "srv-CPU", "cli-CPU", "srv-RSS", "cli-RSS")
	fmt.Fprintf(w, "%-32s %7s %8s %6s %6s %8s %8s %8s %8s\n",
		"", "", "", "", "×size", "s/GiB", "s/GiB", "MiB", "MiB")
	for _, c := range in.cases {
		r, ok := in.results[c.name]
		if !ok {
			continue
		}
		ratio := "-"
		if base, ok := in.results[c.baseline()]; ok {
			ratio = strconv.FormatFloat(base.seconds/r.seconds, 'f', 2, 64)
		}
		fmt.Fprintf(w, "%-32s %7.2f %8.1f %6s %6.3f %8s %8s %8s %8s\n",
			c.name, r.seconds, float64(in.size)/r.seconds/(1<<20), ratio, float64(r.wire)/float64(in.size),
			perGiB(r.serverCPU), perGiB(r.clientCPU), mib(r.serverRSS), mib(r.clientRSS))
	}
	fmt.Fprintln(w, "\n×http: throughput over that of the plain Go GET of /files/ of the same data (slow/*: at the same rate).")
	fmt.Fprintln(w, "wire: response body bytes the server sent, over the file size. RSS: peak resident memory.")
	if !in.curl {
		fmt.Fprintln(w, "curl: not on this machine, not measured.")
	}
	fmt.Fprintln(w, "auto: ferry get offers s2,zstd,gzip; the server picks s2, zstd or none per block by measurement (gzip only for clients without zstd).")

	for _, c := range in.cases {
		r, ok := in.results[c.name]
		if !ok || c.cuts == 0 {
			continue
		}
		blocks := chunker.Count(in.size, in.blockSize)
		perCut := func(extra, block float64) string {
			if r.cuts == 0 {
				return "-"
			}
			return strconv.FormatFloat(extra/float64(r.cuts)/block, 'f', 2, 64)
		}
		fmt.Fprintf(w, "\nresume: %s, %d cuts planned, %d reconnects\n", c.name, c.cuts, r.cuts)
		fmt.Fprintf(w, "  bytes_fetched - size: %d bytes = %s blocks per cut\n",
			r.fetched-in.size, perCut(float64(r.fetched-in.size), float64(in.blockSize)))
		fmt.Fprintf(w, "  on the wire, beyond an uncut stream: %d bytes = %s blocks per cut (a block is %d bytes on the wire)\n",
			r.proxied-r.uncut, perCut(float64(r.proxied-r.uncut), float64(r.uncut)/float64(blocks)), r.uncut/max(blocks, 1))
	}
	for _, c := range in.cases {
		if r, ok := in.results[c.name]; ok && c.seed {
			reportSeed(w, in, c, r)
		}
	}
	targets(w, in)
}

// targets compares the run with the targets of issue 6.
func targets(w io.Writer, in reportInput) {
	ratio := func(name string) (float64, bool) {
		r, ok1 := in.results[name]
		var base benchResult
		var ok2 bool
		for _, c := range in.cases {
			if c.name == name {
				base, ok2 = in.results[c.baseline()]
			}
		}
		if !ok1 || !ok2 {
			return 0, false
		}
		return base.seconds / r.seconds, true
	}
	var lines []string
	for _, name := range []string{"random/ferry/auto/p1", "random/ferry/identity/p1"} {
		if x, ok := ratio(name); ok {
			vsCurl := ""
			if c, ok := in.results["random/curl"]; ok {
				vsCurl = fmt.Sprintf(" (%.2f× curl)", c.seconds/in.results[name].seconds)
			}
			lines = append(lines, fmt.Sprintf("  %-32s %.2f× plain HTTP%s, target ≥ 0.9×: %s", name, x, vsCurl, verdict(x >= 0.9)))
		}
	}
	if x, ok := ratio("slow/text/ferry/auto/p1"); ok {
		lines = append(lines, fmt.Sprintf("  %-32s %.2f× plain HTTP at %s/s, target ≥ 2.5×: %s", "slow/text/ferry/auto/p1", x, humanBytes(in.rate), verdict(x >= 2.5)))
	}
	for _, c := range in.cases {
		if r, ok := in.results[c.name]; ok && c.cuts > 0 && r.cuts > 0 {
			blocks := chunker.Count(in.size, in.blockSize)
			per := float64(r.proxied-r.uncut) / float64(r.cuts) / (float64(r.uncut) / float64(blocks))
			lines = append(lines, fmt.Sprintf("  %-32s %.2f blocks on the wire per cut, target ≤ 1: %s", c.name, per, verdict(per <= 1)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\ntargets (issue 6):\n%s\n", strings.Join(lines, "\n"))
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
