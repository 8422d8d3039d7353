package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// Options configures a download. The zero value of every field but Output
// is a usable default.
type Options struct {
	// Output is the destination path. Required.
	Output string
	// Force allows replacing an existing destination.
	Force bool
	// Strict makes a remote file that changed an error (ErrRemoteChanged)
	// instead of a restart against the new version.
	Strict bool
	// Retries is how many attempts in a row may fail without delivering a
	// block before the download gives up. 0 means 5; negative means none.
	Retries int
	// IdleTimeout is how long a connection may deliver nothing, not even a
	// heartbeat, before it counts as cut. Default 60 s. Two stalls in a row
	// without a block between them fail with ErrTimeout.
	IdleTimeout time.Duration
	// ConnectTimeout bounds each TCP (and TLS) connection set-up. Default 30 s.
	ConnectTimeout time.Duration
	// MaxTime bounds the whole download; 0 means no bound.
	MaxTime time.Duration
	// Parallel is the number of streams that fetch missing blocks, each a
	// contiguous share of them. Default 1.
	Parallel int
	// Header is sent with every request (Authorization, say).
	Header http.Header
	// Checksum, "sha256:<64 hex>", must match the finished file. It implies
	// SHA256.
	Checksum string
	// SHA256 makes the download compute the finished file's SHA-256, check
	// it against the server's and report it in Result.SHA256. Without it
	// every block is checked by its xxh3-64 and the whole file by its
	// xxh3-128, which is enough to catch any damage in transit or on disk;
	// SHA-256 is the digest to compare with one published elsewhere, and it
	// costs about 0.6 CPU-s per GiB, a third of a download's CPU on the
	// machine of docs/PERFORMANCE.md.
	SHA256 bool
	// NoCompression asks the server for uncompressed blocks.
	NoCompression bool
	// HTTPClient makes the requests; nil means one built from the timeouts
	// above. Its Timeout must be zero: streams are long.
	HTTPClient *http.Client
	// OnProgress, if set, is called after every verified block and at each
	// change of phase, from the downloading goroutines, one call at a time.
	OnProgress func(Progress)
	// Logf, if set, receives messages for people: resuming, reconnecting,
	// refetching a block that failed verification.
	Logf func(format string, args ...any)
}

// Progress is a snapshot of a download.
type Progress struct {
	Phase      string // "connecting", "verifying", "downloading", "finishing", "done"
	Size       int64  // file size, once known (-1 before)
	Done       int64  // bytes verified on disk, reused ones included
	Fetched    int64  // block bytes received over the network
	Reused     int64  // bytes of blocks found valid on disk
	Reconnects int
	Refetched  int // blocks fetched again after failing verification
}

// Result describes a finished download.
type Result struct {
	Path            string  `json:"path"`
	URL             string  `json:"url"`
	Size            int64   `json:"size"`
	SHA256          string  `json:"sha256,omitempty"` // with Options.SHA256
	XXH3128         string  `json:"xxh3_128"`
	ETag            string  `json:"etag"`
	BytesFetched    int64   `json:"bytes_fetched"`
	BytesReused     int64   `json:"bytes_reused"`
	BlocksRefetched int     `json:"blocks_refetched"`
	Reconnects      int     `json:"reconnects"`
	Resumed         bool    `json:"resumed"`
	AlreadyComplete bool    `json:"already_complete"`
	Seconds         float64 `json:"seconds"`
}

func (o *Options) setDefaults() error {
	if o.Output == "" {
		return fmt.Errorf("%w: no output path", ErrUsage)
	}
	if o.Retries == 0 {
		o.Retries = 5
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	if o.Checksum != "" {
		if _, err := parseChecksum(o.Checksum); err != nil {
			return err
		}
		o.SHA256 = true
	}
	if o.HTTPClient == nil {
		o.HTTPClient = newHTTPClient(o.ConnectTimeout)
	}
	return nil
}

// parseChecksum accepts "sha256:<64 hex>" and returns the lowercase hex.
func parseChecksum(s string) (string, error) {
	algo, sum, ok := strings.Cut(s, ":")
	sum = strings.ToLower(sum)
	if b, err := hex.DecodeString(sum); !ok || !strings.EqualFold(algo, "sha256") || err != nil || len(b) != 32 {
		return "", fmt.Errorf("%w: checksum %q is not sha256:<64 hex digits>", ErrUsage, s)
	}
	return sum, nil
}

// newHTTPClient builds the default client. Idle connections and servers
// that never answer are caught by the download's own watchdog, which also
// covers the wait for response headers.
func newHTTPClient(connect time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: connect,
		DisableCompression:  true, // blocks are compressed one by one, if at all
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// download is the state of one Download call, shared by its states.
type download struct {
	opts  Options
	url   string
	ep    endpoints
	start time.Time

	part *os.File
	sink *sink              // writes blocks during fetchSpans
	st   state              // the version being downloaded, once known
	man  *manifest.Manifest // fetched only to check or reuse blocks on disk
	end  *chunker.End       // the digests from an end event
	sum  *manifest.Summer   // whole-file digests fed in order, if still in order
	next int64              // offset the in-order summer expects next
	sha  hash.Hash          // the in-order SHA-256 beside sum, with Options.SHA256
	// probed is block 0's span after the probe of a fresh --parallel
	// download; its stream does not wait for the end event, which the
	// others bring.
	probed span
	have   []bool // blocks verified on disk, once the manifest is known
	res    Result
	stats  struct {
		fetched, reused atomic.Int64
		done            atomic.Int64
		reconnects      atomic.Int64
		refetched       atomic.Int64
	}
	repaired bool   // the whole-file check already sent us back once
	reason   string // why the next reverify resumes, for the log
	manMu    sync.Mutex
	sumMu    sync.Mutex
	endMu    sync.Mutex
	progMu   sync.Mutex
	phase    string
	retryMs  atomic.Int64 // the server's latest retry: hint
}

// stateFn is one step of the download; it returns the step that follows.
type stateFn func(ctx context.Context) (stateFn, error)

// Download fetches the file at rawURL (its /sse/, /files/ or /manifest/ URL)
// to opts.Output and returns what it did. It blocks until the file is
// complete and verified, or fails; a failed download leaves its partial
// file and state for the next call to resume.
func Download(ctx context.Context, rawURL string, opts Options) (*Result, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	ep, err := resolve(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.MaxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, opts.MaxTime, fmt.Errorf("%w: --max-time %s exceeded", ErrTimeout, opts.MaxTime))
		defer cancel()
	}
	d := &download{opts: opts, url: rawURL, ep: ep, start: time.Now()}
	d.st.Size = -1
	d.res = Result{Path: opts.Output, URL: rawURL}
	defer func() {
		if d.part != nil {
			d.part.Close()
		}
	}()
	for step := d.stat; step != nil; {
		if step, err = step(ctx); err != nil {
			if cause := context.Cause(ctx); cause != nil { // interrupted, or MaxTime
				if errors.Is(cause, ErrTimeout) {
					return nil, cause
				}
				return nil, fmt.Errorf("client: interrupted: %w", cause)
			}
			return nil, err
		}
	}
	d.res.Seconds = time.Since(d.start).Seconds()
	d.res.BytesFetched = d.stats.fetched.Load()
	d.res.BytesReused = d.stats.reused.Load()
	d.res.Reconnects = int(d.stats.reconnects.Load())
	d.res.BlocksRefetched = int(d.stats.refetched.Load())
	return &d.res, nil
}

func (d *download) logf(format string, args ...any) {
	if d.opts.Logf != nil {
		d.opts.Logf(format, args...)
	}
}

func (d *download) progress(phase string) {
	if d.opts.OnProgress == nil {
		return
	}
	d.progMu.Lock()
	defer d.progMu.Unlock()
	if phase != "" {
		d.phase = phase
	}
	d.opts.OnProgress(Progress{
		Phase: d.phase, Size: d.st.Size, Done: d.stats.done.Load(), Fetched: d.stats.fetched.Load(),
		Reused: d.stats.reused.Load(), Reconnects: int(d.stats.reconnects.Load()), Refetched: int(d.stats.refetched.Load()),
	})
}

// stat looks at the destination and at a partial download beside it.
func (d *download) stat(ctx context.Context) (stateFn, error) {
	d.progress("connecting")
	if info, err := os.Stat(d.opts.Output); err == nil {
		if info.IsDir() {
			return nil, fmt.Errorf("%w: %s is a directory", ErrUsage, d.opts.Output)
		}
		if !d.opts.Force {
			return d.existing, nil
		}
	}
	if info, err := os.Stat(partPath(d.opts.Output)); err == nil && info.Size() > 0 {
		d.res.Resumed = true
		return d.fetchManifest, nil
	}
	return d.fresh, nil
}

// existing accepts a destination that already holds the remote file.
func (d *download) existing(ctx context.Context) (stateFn, error) {
	m, err := d.getManifest(ctx)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(d.opts.Output)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisk, err)
	}
	defer f.Close()
	bad, dig, err := checkFile(ctx, f, m, d.newSummer())
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 || !dig.Match(m.Digests()) {
		return nil, fmt.Errorf("%w: %s differs from the remote file (use --force to replace it)", ErrExists, d.opts.Output)
	}
	if err := d.checkChecksum(dig.SHA256); err != nil {
		return nil, err
	}
	d.logf("%s is already complete and verified", d.opts.Output)
	d.res.AlreadyComplete = true
	d.res.Size, d.res.SHA256, d.res.XXH3128, d.res.ETag = m.Size, dig.SHA256, m.XXH3128, m.ETag
	d.stats.reused.Store(m.Size)
	d.progress("done")
	return nil, nil
}

// fresh streams the whole file from block 0 without waiting for a manifest.
func (d *download) fresh(ctx context.Context) (stateFn, error) {
	d.sum = manifest.NewXXH3Summer()
	if d.opts.SHA256 {
		d.sha = sha256.New()
	}
	d.next = 0
	if err := d.fetchSpans(ctx, nil); errors.Is(err, errChanged) {
		return d.changed, nil
	} else if err != nil {
		return nil, err
	}
	return d.whole, nil
}

// fetchManifest fetches the manifest to check a partial file, and decides
// whether the remote file is the version the partial file began with.
func (d *download) fetchManifest(ctx context.Context) (stateFn, error) {
	saved := readState(d.opts.Output)
	m, err := d.getManifest(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case saved == nil:
		d.logf("found %s without state; reusing the blocks in it that verify", partPath(d.opts.Output))
	case saved.ETag != m.ETag && d.opts.Strict:
		return nil, fmt.Errorf("%w: %s was version %s, the server now has %s (--strict)", ErrRemoteChanged, d.url, saved.ETag, m.ETag)
	case saved.ETag != m.ETag:
		d.logf("remote file changed since the partial download (%s → %s); keeping the blocks that still match", saved.ETag, m.ETag)
	}
	d.reason = "remote unchanged"
	if saved == nil || saved.ETag != m.ETag {
		d.reason = "remote changed"
	}
	return d.reverify, nil
}

// getManifest fetches and validates the manifest, and adopts it.
func (d *download) getManifest(ctx context.Context) (*manifest.Manifest, error) {
	m, err := d.requestManifest(ctx)
	if err != nil {
		return nil, err
	}
	d.manMu.Lock()
	d.man = m
	d.manMu.Unlock()
	return m, nil
}

// requestManifest fetches and validates the manifest, with retries.
func (d *download) requestManifest(ctx context.Context) (*manifest.Manifest, error) {
	var m *manifest.Manifest
	err := d.retry(ctx, func(ctx context.Context) (bool, error) {
		req, err := d.newRequest(ctx, d.ep.manifest())
		if err != nil {
			return false, err
		}
		resp, err := d.opts.HTTPClient.Do(req)
		if err != nil {
			return false, netError(ctx, err)
		}
		defer resp.Body.Close()
		if err := statusError(resp, d.ep.manifest()); err != nil {
			return false, err
		}
		m, err = manifest.Decode(resp.Body)
		if err != nil {
			return false, fmt.Errorf("%w: manifest: %w", ErrProtocol, err)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// reverify hashes the blocks of the partial file against the manifest.
func (d *download) reverify(ctx context.Context) (stateFn, error) {
	m := d.man
	d.progress("verifying")
	if err := d.openPart(m.Size); err != nil {
		return nil, err
	}
	d.st = state{URL: d.url, ETag: m.ETag, Size: m.Size, BlockSize: m.BlockSize}
	if err := writeState(d.opts.Output, d.st); err != nil {
		return nil, err
	}
	bad, _, err := checkBlocks(ctx, d.part, m, nil)
	if err != nil {
		return nil, err
	}
	d.have = make([]bool, m.Blocks)
	for i := range d.have {
		d.have[i] = true
	}
	for _, i := range bad {
		d.have[i] = false
	}
	good := m.Blocks - int64(len(bad))
	reused := int64(0)
	for i := range m.Blocks {
		if d.have[i] {
			_, n := chunker.Span(m.Size, m.BlockSize, i)
			reused += int64(n)
		}
	}
	d.stats.reused.Add(reused)
	d.stats.done.Store(reused)
	first := int64(len(d.have))
	for i, ok := range d.have {
		if !ok {
			first = int64(i)
			break
		}
	}
	if d.reason != "" {
		d.logf("resuming at block %d/%d, %s (%d blocks on disk verified, %d to fetch)", first, m.Blocks, d.reason, good, len(bad))
		d.reason = ""
	}
	d.sum, d.sha = nil, nil // blocks will not arrive in order from 0: hash the file at the end
	if err := checkSpace(d.opts.Output, m.Size-reused); err != nil {
		return nil, err
	}
	return d.missing, nil
}

// missing streams the blocks not yet on disk.
func (d *download) missing(ctx context.Context) (stateFn, error) {
	var spans []span
	m := d.man
	for i := int64(0); i < m.Blocks; i++ {
		if d.have[i] {
			continue
		}
		off, _ := chunker.Span(m.Size, m.BlockSize, i)
		if k := len(spans) - 1; k >= 0 && spans[k].end == off {
			spans[k].end = min(off+int64(m.BlockSize), m.Size)
		} else {
			spans = append(spans, span{off, min(off+int64(m.BlockSize), m.Size)})
		}
	}
	if len(spans) > 0 {
		if err := d.fetchSpans(ctx, spans); errors.Is(err, errChanged) {
			return d.changed, nil
		} else if err != nil {
			return nil, err
		}
	}
	return d.whole, nil
}

// whole checks the digests of the complete file.
func (d *download) whole(ctx context.Context) (stateFn, error) {
	d.progress("finishing")
	var got manifest.Digests
	if d.sum != nil && d.next == d.st.Size {
		got = d.sum.Digests()
		if d.sha != nil {
			got.SHA256 = hex.EncodeToString(d.sha.Sum(nil))
		}
	} else {
		var err error
		if got, err = digestFile(ctx, d.part, d.st.Size, d.newSummer()); err != nil {
			return nil, err
		}
	}
	var want manifest.Digests
	switch {
	case d.man != nil && d.man.ETag == d.st.ETag:
		want = d.man.Digests()
	case d.end != nil:
		want = manifest.Digests{XXH3128: d.end.XXH3128, SHA256: d.end.SHA256}
	default: // the stream was cut after its last block, before its end event
		if _, err := d.getManifest(ctx); err != nil {
			return nil, err
		}
		if d.man.ETag != d.st.ETag {
			d.reason = "remote changed"
			return d.changed(ctx)
		}
		want = d.man.Digests()
	}
	if !got.Match(want) {
		if d.repaired {
			return nil, fmt.Errorf("%w: file digests xxh3-128 %s sha256 %q, server says %s and %s", ErrIntegrity, got.XXH3128, got.SHA256, want.XXH3128, want.SHA256)
		}
		// Every block verified, yet the file does not: an end event damaged
		// in transit, or a server whose blocks and digests disagree. The
		// manifest arbitrates; blocks that disagree with it are fetched again.
		d.repaired = true
		d.logf("whole-file digest does not match; checking every block against the manifest")
		if _, err := d.getManifest(ctx); err != nil {
			return nil, err
		}
		d.reason = "repairing"
		return d.reverify, nil
	}
	if err := d.checkChecksum(got.SHA256); err != nil {
		return nil, err
	}
	d.res.Size, d.res.SHA256, d.res.XXH3128, d.res.ETag = d.st.Size, got.SHA256, got.XXH3128, d.st.ETag
	return d.finish, nil
}

func (d *download) checkChecksum(sha string) error {
	if d.opts.Checksum == "" {
		return nil
	}
	want, _ := parseChecksum(d.opts.Checksum)
	if sha != want {
		return fmt.Errorf("%w: sha256 is %s, --checksum wants %s", ErrIntegrity, sha, want)
	}
	return nil
}

// changed restarts against a new version of the remote file, keeping the
// blocks on disk that still match, or stops with Strict.
func (d *download) changed(ctx context.Context) (stateFn, error) {
	if d.opts.Strict {
		return nil, fmt.Errorf("%w: %s changed during the download (--strict)", ErrRemoteChanged, d.url)
	}
	if d.man == nil || d.man.ETag == d.st.ETag {
		if _, err := d.getManifest(ctx); err != nil {
			return nil, err
		}
	}
	d.logf("remote file changed during the download; keeping the blocks that still match")
	d.reason = "remote changed"
	d.end = nil
	return d.reverify, nil
}

// newSummer returns a Summer of the digests this download checks.
func (d *download) newSummer() *manifest.Summer {
	if d.opts.SHA256 {
		return manifest.NewSummer()
	}
	return manifest.NewXXH3Summer()
}

// finish makes the file durable and moves it into place.
func (d *download) finish(ctx context.Context) (stateFn, error) {
	if err := d.part.Sync(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisk, err)
	}
	if err := d.part.Close(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisk, err)
	}
	d.part = nil
	if _, err := os.Stat(d.opts.Output); err == nil && !d.opts.Force {
		return nil, fmt.Errorf("%w: %s appeared during the download", ErrExists, d.opts.Output)
	}
	if err := os.Rename(partPath(d.opts.Output), d.opts.Output); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisk, err)
	}
	os.Remove(statePath(d.opts.Output))
	if err := syncDir(filepath.Dir(d.opts.Output)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisk, err)
	}
	d.stats.done.Store(d.st.Size)
	d.progress("done")
	return nil, nil
}

// openPart opens (creating) the partial file at the given size.
func (d *download) openPart(size int64) error {
	if d.part == nil {
		f, err := os.OpenFile(partPath(d.opts.Output), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDisk, err)
		}
		d.part = f
	}
	if info, err := d.part.Stat(); err != nil || info.Size() != size {
		if err := d.part.Truncate(size); err != nil {
			return fmt.Errorf("%w: %w", ErrDisk, err)
		}
	}
	return nil
}
