package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
	sse "github.com/tmaxmax/go-sse"
)

const liveBS = 4096

// startLive serves root with small blocks and a short heartbeat.
func startLive(t *testing.T, root string, cfg Config) *httptest.Server {
	t.Helper()
	cfg.Root, cfg.BlockSize = root, liveBS
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 200 * time.Millisecond
	}
	return startWith(t, cfg)
}

// liveEvent is one event of a followed stream, decoded.
type liveEvent struct {
	typ   string
	meta  chunker.Meta
	block chunker.Frame
	raw   []byte
	end   chunker.End
}

// follow opens a stream and delivers its events, parsed by go-sse, on a
// channel closed when the response ends.
func follow(t *testing.T, u string, header ...string) (*http.Response, <-chan liveEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan liveEvent, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		dec := chunker.NewDecoder()
		for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: 1 << 20}) {
			if err != nil {
				return
			}
			le := liveEvent{typ: ev.Type}
			switch ev.Type {
			case chunker.EventMeta:
				json.Unmarshal([]byte(ev.Data), &le.meta)
			case chunker.EventEnd:
				json.Unmarshal([]byte(ev.Data), &le.end)
			case chunker.EventBlock:
				f, err := chunker.ParseFrame([]byte(ev.Data))
				if err != nil || ev.LastEventID != strconv.FormatInt(f.Offset, 10) {
					return
				}
				raw, err := dec.Decode(f)
				if err != nil {
					return
				}
				le.block, le.raw = f, append([]byte(nil), raw...)
			}
			select {
			case ch <- le:
			case <-ctx.Done():
				return
			}
		}
	}()
	return resp, ch
}

// next returns the next event, failing the test if none comes in time.
func next(t *testing.T, ch <-chan liveEvent) (liveEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		return ev, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return liveEvent{}, false
}

func mustNext(t *testing.T, ch <-chan liveEvent, typ string) liveEvent {
	t.Helper()
	ev, ok := next(t, ch)
	if !ok {
		t.Fatalf("stream ended, want %s", typ)
	}
	if ev.typ != typ {
		t.Fatalf("event %q, want %q", ev.typ, typ)
	}
	return ev
}

// writer opens a file for appending, as a build would.
func writer(t *testing.T, path string) *os.File {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w *os.File, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestFollowGrowingFile(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{})
	data := randomBytes(10*liveBS+100, 1)
	w := writer(t, filepath.Join(root, "grow.bin"))
	write(t, w, data[:liveBS+10])

	resp, evs := follow(t, sseURL(ts.URL, "grow.bin", "follow=1"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	meta := mustNext(t, evs, chunker.EventMeta).meta
	if !meta.Live || meta.Size != liveBS+10 || meta.ETag[0] != 'l' || meta.Start != 0 {
		t.Fatalf("meta = %+v, want live, size %d, a live etag", meta, liveBS+10)
	}
	var got []byte
	written := liveBS + 10
	for off := 0; off < 10*liveBS; off += liveBS {
		if off > 0 { // block off/liveBS becomes whole
			write(t, w, data[written:off+liveBS+10])
			written = off + liveBS + 10
		}
		b := mustNext(t, evs, chunker.EventBlock)
		if b.block.Offset != int64(off) || b.block.Length != liveBS {
			t.Fatalf("block at %d of %d bytes, want %d of %d: a live stream sends whole blocks", b.block.Offset, b.block.Length, off, liveBS)
		}
		got = append(got, b.raw...)
	}
	// 10 whole blocks and 50 of the last 100 bytes are on disk: the manifest
	// lists the whole blocks, and the short one is not sent.
	write(t, w, data[10*liveBS+10:10*liveBS+50])
	m := liveManifestOf(t, ts, "grow.bin", "")
	if !m.Live || m.Blocks != 10 || m.ETag != meta.ETag || m.Hashes[9] != manifest.Hash(chunker.Hash(data[9*liveBS:10*liveBS])) {
		t.Fatalf("live manifest: live %v, %d blocks, etag %s; want live, 10 blocks, %s", m.Live, m.Blocks, m.ETag, meta.ETag)
	}
	write(t, w, data[10*liveBS+50:])
	w.Close()
	last := mustNext(t, evs, chunker.EventBlock)
	if last.block.Offset != 10*liveBS || last.block.Length != 100 {
		t.Fatalf("last block at %d of %d bytes, want %d of 100", last.block.Offset, last.block.Length, 10*liveBS)
	}
	got = append(got, last.raw...)
	end := mustNext(t, evs, chunker.EventEnd).end
	if end.Size != int64(len(data)) || end.SHA256 != sha(data) || string(got) != string(data) {
		t.Fatalf("end %+v; got %d bytes, sha %s; want %d, %s", end, len(got), sha(got), len(data), sha(data))
	}
	if _, ok := next(t, evs); ok {
		t.Fatal("events after the end event")
	}
	// The finished file's manifest, pinned to the live etag, is the final one.
	if m := liveManifestOf(t, ts, "grow.bin", meta.ETag); m.Live || m.SHA256 != sha(data) || m.Size != int64(len(data)) {
		t.Fatalf("final manifest: live %v, size %d, sha %s", m.Live, m.Size, m.SHA256)
	}
}

// liveManifestOf fetches /manifest/rel?follow=1, pinned to etag if not "".
func liveManifestOf(t *testing.T, ts *httptest.Server, rel, etag string) *manifest.Manifest {
	t.Helper()
	u := ts.URL + "/manifest/" + rel + "?follow=1"
	if etag != "" {
		u += "&v=" + etag
	}
	resp := get(t, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	m, err := manifest.Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFollowTemporaryFileRenamed(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{})
	data := randomBytes(3*liveBS+7, 2)
	w := writer(t, filepath.Join(root, "app.tar.gz.part"))
	write(t, w, data[:liveBS])
	_, evs := follow(t, sseURL(ts.URL, "app.tar.gz", "follow=1"))
	if meta := mustNext(t, evs, chunker.EventMeta).meta; !meta.Live {
		t.Fatalf("meta %+v: the temporary file is followed live", meta)
	}
	write(t, w, data[liveBS:])
	// Renamed into place while the writer still has it open: complete.
	if err := os.Rename(filepath.Join(root, "app.tar.gz.part"), filepath.Join(root, "app.tar.gz")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for range 4 {
		got = append(got, mustNext(t, evs, chunker.EventBlock).raw...)
	}
	if end := mustNext(t, evs, chunker.EventEnd).end; end.SHA256 != sha(data) || string(got) != string(data) {
		t.Fatalf("got %d bytes, end %+v", len(got), end)
	}
}

func TestFollowIdleCompletes(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{FollowIdle: 300 * time.Millisecond})
	data := randomBytes(2*liveBS+1, 3)
	w := writer(t, filepath.Join(root, "slow.log"))
	write(t, w, data)
	_, evs := follow(t, sseURL(ts.URL, "slow.log", "follow=1"))
	mustNext(t, evs, chunker.EventMeta)
	var got []byte
	for range 3 { // the writer still has it open: only the idle time ends it
		got = append(got, mustNext(t, evs, chunker.EventBlock).raw...)
	}
	if end := mustNext(t, evs, chunker.EventEnd).end; end.Size != int64(len(data)) || string(got) != string(data) {
		t.Fatalf("end %+v after %d bytes", end, len(got))
	}
}

func TestFollowTruncatedIsChanged(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{})
	path := filepath.Join(root, "build.bin")
	w := writer(t, path)
	write(t, w, randomBytes(3*liveBS, 4))
	_, evs := follow(t, sseURL(ts.URL, "build.bin", "follow=1"))
	meta := mustNext(t, evs, chunker.EventMeta).meta
	for range 3 {
		mustNext(t, evs, chunker.EventBlock)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	write(t, w, randomBytes(4*liveBS, 5))
	for {
		ev, ok := next(t, evs)
		if !ok {
			break
		}
		if ev.typ == chunker.EventEnd || ev.typ == chunker.EventBlock && ev.block.Offset < 3*liveBS {
			t.Fatalf("%s event after the truncation", ev.typ)
		}
	}
	// The same inode, rewritten: a new version, which a pinned reconnect learns.
	resp := get(t, sseURL(ts.URL, "build.bin", "follow=1", "v="+meta.ETag), "Last-Event-ID", strconv.Itoa(2*liveBS))
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("pinned reconnect after a truncation: %d, want 412", resp.StatusCode)
	}
	if now := unquoteETag(resp.Header.Get("ETag")); now == meta.ETag || now[0] != 'l' {
		t.Fatalf("412's ETag %q, want a new live etag (not %s)", now, meta.ETag)
	}
}

func unquoteETag(s string) string {
	if len(s) >= 2 && s[0] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func TestFollowWaitsForTheFile(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{FollowWait: time.Minute})
	data := randomBytes(liveBS+5, 6)
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(sseURL(ts.URL, "later.bin", "follow=1"))
		if err == nil {
			got <- resp
		}
		close(got)
	}()
	// The server holds the request (a 404 now would fail the test below).
	w := writer(t, filepath.Join(root, "later.bin.tmp"))
	write(t, w, data)
	os.Rename(filepath.Join(root, "later.bin.tmp"), filepath.Join(root, "later.bin"))
	w.Close()
	var resp *http.Response
	select {
	case resp = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10 s after the file appeared")
	}
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %v", resp)
	}
	defer resp.Body.Close()
	if r := readStream(t, resp.Body); string(r.data) != string(data) || r.end == nil {
		t.Fatalf("got %d bytes, end %v", len(r.data), r.end)
	}

	short := startLive(t, root, Config{FollowWait: 100 * time.Millisecond})
	if resp := get(t, sseURL(short.URL, "never.bin", "follow=1")); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("nothing appeared within --follow-wait: %d, want 404", resp.StatusCode)
	}
}

func TestFollowResumeAfterComplete(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{})
	data := randomBytes(4*liveBS+9, 7)
	w := writer(t, filepath.Join(root, "art.bin"))
	write(t, w, data[:2*liveBS])
	resp, evs := follow(t, sseURL(ts.URL, "art.bin", "follow=1"))
	meta := mustNext(t, evs, chunker.EventMeta).meta
	mustNext(t, evs, chunker.EventBlock)
	resp.Body.Close() // cut after block 0
	write(t, w, data[2*liveBS:])
	w.Close()

	cases := []struct {
		name   string
		held   int64
		blocks int
	}{
		{"after block 0", 0, 4},
		{"after the last block", 4 * liveBS, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, evs := follow(t, sseURL(ts.URL, "art.bin", "follow=1", "v="+meta.ETag), "Last-Event-ID", strconv.FormatInt(tc.held, 10))
			if m := mustNext(t, evs, chunker.EventMeta).meta; m.ETag != meta.ETag || m.Start != tc.held+liveBS {
				t.Fatalf("meta %+v, want etag %s from %d", m, meta.ETag, tc.held+liveBS)
			}
			got := data[:min(tc.held+liveBS, int64(len(data)))]
			for range tc.blocks {
				got = append(got[:len(got):len(got)], mustNext(t, evs, chunker.EventBlock).raw...)
			}
			if end := mustNext(t, evs, chunker.EventEnd).end; end.SHA256 != sha(data) || sha(got) != sha(data) {
				t.Fatalf("end %+v, got %d bytes", end, len(got))
			}
		})
	}
}

func TestFollowOrdinaryAnswers(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{})
	writeFile(t, root, "done.bin", randomBytes(liveBS, 8))
	w := writer(t, filepath.Join(root, "busy.bin"))
	write(t, w, randomBytes(liveBS, 9))
	_, evs := follow(t, sseURL(ts.URL, "busy.bin", "follow=1"))
	live := mustNext(t, evs, chunker.EventMeta).meta.ETag

	if r := readStream(t, get(t, sseURL(ts.URL, "done.bin", "follow=1")).Body); r.meta.Live || r.meta.ETag[0] == 'l' || r.end == nil {
		t.Errorf("a file nobody writes is followed as an ordinary stream: meta %+v", r.meta)
	}
	cases := []struct {
		name string
		url  string
		want int
	}{
		{"a live etag without follow", sseURL(ts.URL, "busy.bin", "v="+live), http.StatusPreconditionFailed},
		{"Range of a live file", sseURL(ts.URL, "busy.bin", "follow=1", "range=0-99"), http.StatusRequestedRangeNotSatisfiable},
		{"Last-Event-ID past what exists", sseURL(ts.URL, "busy.bin", "follow=1", "lastEventId="+strconv.Itoa(5*liveBS)), http.StatusBadRequest},
		{"another live etag", sseURL(ts.URL, "busy.bin", "follow=1", "v=l1-2-1000"), http.StatusPreconditionFailed},
		{"a path out of the root", ts.URL + "/sse/..%2fetc%2fpasswd?follow=1", http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if resp := get(t, tc.url); resp.StatusCode != tc.want {
				t.Errorf("GET %s: %d, want %d", tc.url, resp.StatusCode, tc.want)
			}
		})
	}
}

// A live file that does not grow gets a ping every heartbeat, so that
// proxies and clients see the stream alive.
func TestFollowPingsWhileWaiting(t *testing.T) {
	root := t.TempDir()
	ts := startLive(t, root, Config{Heartbeat: 100 * time.Millisecond})
	w := writer(t, filepath.Join(root, "quiet.bin"))
	write(t, w, randomBytes(liveBS, 10))
	resp := get(t, sseURL(ts.URL, "quiet.bin", "follow=1"))
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	pings := 0
	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for pings < 3 && lines.Scan() {
		if lines.Text() == ": ping" {
			pings++
		}
	}
	if pings < 3 {
		t.Fatalf("%d pings from a live file that does not grow, want a ping per heartbeat", pings)
	}
}

// Waiting for a file to appear is bounded like streams are: a request
// past MaxStreams is refused at once, and a folder is not waited for.
func TestFollowWaitBounded(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	ts := startLive(t, root, Config{FollowWait: time.Minute, MaxStreams: 1})
	if resp := get(t, sseURL(ts.URL, "dir", "follow=1")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("follow of a folder: %d, want 404 at once", resp.StatusCode)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan struct{})
	go func() {
		defer close(held)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sseURL(ts.URL, "later.bin", "follow=1"), nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Once the first request waits, holding the one stream allowed, a
	// second is refused (503) at once.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(metricsText(t, ts), "ferry_streams_open 1") {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the waiting request is not counted as a stream within 10 s")
		}
	}
	if resp := get(t, sseURL(ts.URL, "other.bin", "follow=1")); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second waiting request: %d, want 503 past MaxStreams", resp.StatusCode)
	}
	cancel()
	<-held
}

func metricsText(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	b, _ := io.ReadAll(get(t, ts.URL+"/metrics").Body)
	return string(b)
}

// A follower of a symlink out of the root is answered 404 at once, as
// without follow, not held for FollowWait.
func TestFollowSymlinkOutIsNotWaitedFor(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	writeFile(t, outside, "secret", []byte("secret"))
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "link")); err != nil {
		t.Skip(err)
	}
	ts := startLive(t, root, Config{FollowWait: time.Hour})
	for _, p := range []string{"/sse/link?follow=1", "/manifest/link?follow=1"} {
		if resp := get(t, ts.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestTrackerCatchesRewriteWhileHashing: the file is truncated and
// written again (another build, longer than what was hashed) between a
// look's checks and its reads. The tracker must not hash the second
// build's blocks as the first's, nor hash a block read short.
func TestTrackerCatchesRewriteWhileHashing(t *testing.T) {
	build := func(seed byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7/liveBS)
		}
		return b
	}
	for _, tt := range []struct {
		name       string
		rewrite    []byte // the file when the look reads it
		wantHash   int
		wantBlocks int64 // published after the look
	}{
		{"written again past what was hashed", build(100, 6*liveBS), hashChanged, 2},
		{"shorter than the size looked at", build(1, 3*liveBS+10), hashChanged, 3},
		{"grown as it was", build(1, 6*liveBS), hashDone, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, build(1, 2*liveBS), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr := &tracker{key: liveKey{bs: liveBS}, f: f, wake: make(chan struct{}), stop: make(chan struct{}), sum: manifest.NewSummer()}
			if got := tr.hash(2*liveBS, false); got != hashDone {
				t.Fatalf("first look: %d, want %d", got, hashDone)
			}
			if err := os.WriteFile(path, tt.rewrite, 0o644); err != nil { // truncates, then writes
				t.Fatal(err)
			}
			if got := tr.hash(6*liveBS, false); got != tt.wantHash {
				t.Errorf("look after the rewrite: %d, want %d", got, tt.wantHash)
			}
			if snap, _ := tr.snapshot(); snap.blocks != tt.wantBlocks {
				t.Errorf("published %d blocks, want %d", snap.blocks, tt.wantBlocks)
			}
		})
	}
}
