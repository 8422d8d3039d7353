package client

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// A Client downloads files from Ferry servers. It holds what many downloads
// share: the HTTP transport, request headers, timeouts and the retry
// budget. Its zero value is ready to use; set its fields before the first
// download and do not change them afterwards. A Client is safe for
// concurrent use by several goroutines.
type Client struct {
	// HTTPClient makes the requests; nil means a transport of the Client's
	// own, built from ConnectTimeout. Its Timeout must be zero: streams are
	// long, and the download's idle watchdog bounds every wait instead.
	HTTPClient *http.Client
	// Header is sent with every request.
	Header http.Header
	// Token, if set, is sent as "Authorization: Bearer <Token>" unless
	// Header has an Authorization of its own.
	Token string
	// ConnectTimeout bounds each TCP (and TLS) connection set-up of the
	// Client's own transport. Default 30 s.
	ConnectTimeout time.Duration
	// TLSConfig, if set, is the TLS configuration of the Client's own
	// transport: RootCAs to trust a private CA, say.
	TLSConfig *tls.Config
	// IdleTimeout is how long a connection may deliver nothing, not even a
	// heartbeat, before it counts as cut. Default 60 s. Two stalls in a row
	// without a block between them fail with ErrTimeout.
	IdleTimeout time.Duration
	// Retries is how many attempts in a row may fail without delivering a
	// block before a download gives up; it also bounds how often a
	// download follows a remote file that changes, or replicas that
	// disagree about its version. 0 means 5; negative means none.
	Retries int

	once sync.Once
	hc   *http.Client
	own  bool // hc is the Client's own, closed by Close
}

// DefaultClient is the Client of the package-level Download and Verify.
var DefaultClient = &Client{}

// Options configures one download. The zero value is a usable default.
type Options struct {
	// Force allows replacing an existing destination.
	Force bool
	// Strict makes a remote file that changed an error (ErrRemoteChanged)
	// instead of a restart against the new version.
	Strict bool
	// Parallel is the number of streams that fetch missing blocks, each a
	// contiguous share of them: 0 means 1, at most 64.
	Parallel int
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
	// Seeds are local files, older versions of the one downloaded, say,
	// whose blocks a new download copies where they match the manifest (at
	// any offset, by the manifest's rolling checksums, each confirmed by
	// its xxh3-64) instead of fetching them. With Force, an existing
	// destination is a seed too.
	Seeds []string
	// Follow follows a file still being written (a build's artifact): the
	// download takes each block as soon as the server's file has it, waits
	// while the file grows, and completes with the verified whole file
	// once the writer is done. A file nobody writes downloads as usual.
	// Follow uses one stream (Parallel applies only to a file complete
	// when the download starts) and takes no Seeds.
	Follow bool
	// MaxTime bounds the whole download; 0 means no bound.
	MaxTime time.Duration
	// OnProgress, if set, is called after every verified block and at each
	// change of phase, from the downloading goroutines, one call at a time.
	OnProgress func(Progress)
	// Logf, if set, receives messages for people: resuming, reconnecting,
	// refetching a block that failed verification.
	Logf func(format string, args ...any)
}

// MaxParallel is the largest Options.Parallel.
const MaxParallel = 64

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Logf, if set, receives the messages of the manifest request's retries.
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
	BytesSeeded     int64   `json:"bytes_seeded"` // of BytesReused, copied from Options.Seeds
	BlocksRefetched int     `json:"blocks_refetched"`
	Reconnects      int     `json:"reconnects"`
	Resumed         bool    `json:"resumed"`
	AlreadyComplete bool    `json:"already_complete"`
	Seconds         float64 `json:"seconds"`
}

// Download fetches the file at rawURL with DefaultClient.
func Download(ctx context.Context, rawURL, dst string, opts Options) (*Result, error) {
	return DefaultClient.Download(ctx, rawURL, dst, opts)
}

// Verify checks a local file with DefaultClient.
func Verify(ctx context.Context, path, rawURL string, opts VerifyOptions) (*VerifyReport, error) {
	return DefaultClient.Verify(ctx, path, rawURL, opts)
}

// Download fetches the file at rawURL (its /sse/, /files/ or /manifest/ URL)
// to dst and returns what it did. It blocks until the file is complete and
// verified, or fails; a failed download leaves its partial file and state
// beside dst for the next call to resume.
func (c *Client) Download(ctx context.Context, rawURL, dst string, opts Options) (*Result, error) {
	if err := opts.check(dst); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
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
	return newDownload(c.config(), opts, rawURL, ep, dst).run(ctx)
}

// Close closes the idle connections of the Client's own transport. The
// Client stays usable; a later download opens new ones.
func (c *Client) Close() error {
	c.once.Do(c.init)
	if c.own {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// check validates the Client's fields.
func (c *Client) check() error {
	if c.HTTPClient != nil && c.HTTPClient.Timeout != 0 {
		return fmt.Errorf("%w: HTTPClient.Timeout is %s; it must be zero (use IdleTimeout)", ErrUsage, c.HTTPClient.Timeout)
	}
	if c.IdleTimeout < 0 || c.ConnectTimeout < 0 {
		return fmt.Errorf("%w: negative timeout", ErrUsage)
	}
	return nil
}

func (c *Client) init() {
	if c.HTTPClient != nil {
		c.hc = c.HTTPClient
		return
	}
	c.hc, c.own = newHTTPClient(c.connectTimeout(), c.TLSConfig), true
}

func (c *Client) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return 30 * time.Second
}

// config is a Client's settings with the defaults filled in, as one
// download reads them.
type config struct {
	hc      *http.Client
	header  http.Header
	idle    time.Duration
	retries int
}

func (c *Client) config() config {
	c.once.Do(c.init)
	cfg := config{hc: c.hc, header: c.Header.Clone(), idle: c.IdleTimeout, retries: c.Retries}
	if cfg.header == nil {
		cfg.header = http.Header{}
	}
	if c.Token != "" && cfg.header.Get("Authorization") == "" {
		cfg.header.Set("Authorization", "Bearer "+c.Token)
	}
	if cfg.idle <= 0 {
		cfg.idle = 60 * time.Second
	}
	switch {
	case cfg.retries == 0:
		cfg.retries = 5
	case cfg.retries < 0:
		cfg.retries = 0
	}
	return cfg
}

// check validates the options of a download to dst and fills in defaults.
func (o *Options) check(dst string) error {
	if dst == "" {
		return fmt.Errorf("%w: no destination path", ErrUsage)
	}
	if o.Parallel == 0 {
		o.Parallel = 1
	}
	if o.Parallel < 1 || o.Parallel > MaxParallel {
		return fmt.Errorf("%w: Parallel is %d; it must be between 1 and %d", ErrUsage, o.Parallel, MaxParallel)
	}
	if o.MaxTime < 0 {
		return fmt.Errorf("%w: negative MaxTime", ErrUsage)
	}
	if o.Follow && len(o.Seeds) > 0 {
		return fmt.Errorf("%w: seeds and follow do not go together: a live file has no manifest to match them against yet", ErrUsage)
	}
	for _, s := range o.Seeds {
		if info, err := os.Stat(s); err != nil || !info.Mode().IsRegular() {
			return fmt.Errorf("%w: seed %s is not a readable file", ErrUsage, s)
		}
	}
	if o.Checksum != "" {
		if _, err := parseChecksum(o.Checksum); err != nil {
			return err
		}
		o.SHA256 = true
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
func newHTTPClient(connect time.Duration, tlsConfig *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: connect,
		TLSClientConfig:     tlsConfig,
		DisableCompression:  true, // blocks are compressed one by one, if at all
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}
