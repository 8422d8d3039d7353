package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/google/go-cmp/cmp"
	"github.com/zeebo/xxh3"
)

var mtime = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

func build(t *testing.T, data []byte, bs int) *Manifest {
	t.Helper()
	m, err := Build(context.Background(), bytes.NewReader(data), "a/b.bin", int64(len(data)), mtime, bs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBuild(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 250) // 2500 bytes: 3 blocks of 1 KiB
	m := build(t, data, 1024)
	sha := sha256.Sum256(data)
	x := xxh3.Hash128(data).Bytes()
	want := &Manifest{
		Version: 1, Path: "a/b.bin", Size: 2500, BlockSize: 1024, Blocks: 3, MTime: mtime,
		ETag:    ETag(2500, mtime, 1024),
		Hashes:  []Hash{Hash(xxh3.Hash(data[:1024])), Hash(xxh3.Hash(data[1024:2048])), Hash(xxh3.Hash(data[2048:]))},
		Weak:    []uint32{chunker.Weak(data[:1024]), chunker.Weak(data[1024:2048]), chunker.Weak(data[2048:])},
		XXH3128: hex.EncodeToString(x[:]), SHA256: hex.EncodeToString(sha[:]),
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Build mismatch (-want +got):\n%s", diff)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate of a built manifest: %v", err)
	}
}

func TestBuildEmpty(t *testing.T) {
	m := build(t, nil, 1024)
	if m.Blocks != 0 || len(m.Hashes) != 0 {
		t.Errorf("empty file: %d blocks, %d hashes, want 0", m.Blocks, len(m.Hashes))
	}
	// Digests of the empty input, from the reference implementations.
	if m.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("sha256 of empty = %s", m.SHA256)
	}
	if m.XXH3128 != "99aa06d3014798d86001c324468d497f" {
		t.Errorf("xxh3_128 of empty = %s", m.XXH3128)
	}
}

func TestJSONFieldNames(t *testing.T) {
	m := build(t, []byte("abc"), 1024)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"version", "path", "size", "block_size", "blocks", "mtime", "etag", "hashes", "xxh3_128", "sha256"} {
		if _, ok := fields[name]; !ok {
			t.Errorf("manifest JSON lacks field %q: %s", name, b)
		}
	}
	if h := fields["hashes"].([]any)[0].(string); len(h) != 16 || strings.ToLower(h) != h {
		t.Errorf("hash %q is not 16 lowercase hex", h)
	}
	got, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Decode(Marshal(m)): %v", err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestETag(t *testing.T) {
	a := ETag(100, mtime, 1024)
	tests := []struct {
		name string
		etag string
		same bool
	}{
		{"same stat", ETag(100, mtime.In(time.FixedZone("x", 3600)), 1024), true},
		{"size", ETag(101, mtime, 1024), false},
		{"mtime by 1ns", ETag(100, mtime.Add(time.Nanosecond), 1024), false},
		{"block size", ETag(100, mtime, 2048), false},
	}
	for _, tt := range tests {
		if (tt.etag == a) != tt.same {
			t.Errorf("%s: ETag = %q vs %q, want same=%v", tt.name, tt.etag, a, tt.same)
		}
	}
	if strings.ContainsAny(a, "\",  ") {
		t.Errorf("ETag %q needs quoting inside an HTTP header value", a)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := build(t, bytes.Repeat([]byte("x"), 3000), 1024)
	tests := map[string]func(m map[string]any){
		"version":        func(m map[string]any) { m["version"] = 2 },
		"negative size":  func(m map[string]any) { m["size"] = -1 },
		"block size":     func(m map[string]any) { m["block_size"] = 10 },
		"block count":    func(m map[string]any) { m["blocks"] = 4 },
		"missing hash":   func(m map[string]any) { m["hashes"] = m["hashes"].([]any)[:2] },
		"bad hash":       func(m map[string]any) { m["hashes"].([]any)[0] = "zz" },
		"no etag":        func(m map[string]any) { delete(m, "etag") },
		"short xxh3_128": func(m map[string]any) { m["xxh3_128"] = "00" },
		"bad sha256":     func(m map[string]any) { m["sha256"] = strings.Repeat("g", 64) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			b, _ := json.Marshal(good)
			var m map[string]any
			json.Unmarshal(b, &m)
			mutate(m)
			b, _ = json.Marshal(m)
			if _, err := Decode(bytes.NewReader(b)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode = %v, want ErrInvalid", err)
			}
		})
	}
	for _, in := range []string{"", "{", "[]", "null", `{"version":1}`} {
		if _, err := Decode(strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestCacheSharesOneComputation(t *testing.T) {
	c, err := NewCache("", 0)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Path: "f", Size: 3, MTimeNano: 1, BlockSize: 1024}
	var calls atomic.Int32
	release := make(chan struct{})
	buildFn := func(ctx context.Context) (*Manifest, error) {
		calls.Add(1)
		<-release
		return Build(ctx, strings.NewReader("abc"), "f", 3, time.Unix(0, 1), 1024)
	}
	var wg sync.WaitGroup
	results := make([]*Manifest, 8)
	for i := range results {
		wg.Go(func() {
			m, err := c.Get(context.Background(), key, buildFn)
			if err != nil {
				t.Error(err)
			}
			results[i] = m
		})
	}
	// Let every caller block in Get, then release the single build.
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("build called %d times, want 1", n)
	}
	for i, m := range results {
		if m != results[0] {
			t.Errorf("caller %d got a different manifest", i)
		}
	}
}

func TestCacheOutlivesProcess(t *testing.T) {
	dir := t.TempDir()
	key := Key{Path: "f", Size: 3, MTimeNano: mtime.UnixNano(), BlockSize: 1024}
	m := build(t, []byte("abc"), 1024)
	m.Path, m.Size = "f", 3
	c1, _ := NewCache(dir, 0)
	c1.Put(key, m)
	c2, _ := NewCache(dir, 0)
	got, ok := c2.Lookup(key)
	if !ok {
		t.Fatal("a new cache on the same directory does not find the manifest")
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("reloaded manifest mismatch (-want +got):\n%s", diff)
	}
	other := key
	other.MTimeNano++
	if _, ok := c2.Lookup(other); ok {
		t.Error("Lookup of another version found a manifest")
	}
}

func TestCacheGetHonoursContext(t *testing.T) {
	c, _ := NewCache("", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	block := make(chan struct{})
	defer close(block)
	_, err := c.Get(ctx, Key{Path: "slow"}, func(context.Context) (*Manifest, error) { <-block; return nil, errors.New("x") })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
}

func FuzzDecode(f *testing.F) {
	m, _ := Build(context.Background(), strings.NewReader("hello world"), "h", 11, mtime, chunker.MinBlockSize)
	b, _ := json.Marshal(m)
	f.Add(b)
	f.Add([]byte(`{"version":1,"size":1e30}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := Decode(bytes.NewReader(p))
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode accepted a manifest that does not validate: %v", err)
		}
	})
}
