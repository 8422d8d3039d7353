package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startCached serves dir through an HTTP origin and a block cache in
// cacheDir, as a restarted replica would.
func startCached(t *testing.T, fo *fileOrigin, originURL, cacheDir string, max int64) (*BlockCache, *httptest.Server) {
	t.Helper()
	bc, err := NewBlockCache(cacheDir, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Close() })
	o, err := NewHTTPOrigin(originURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Origin: o, BlockSize: 64 << 10, BlockCache: bc})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return bc, ts
}

// A second server over the same cache (a restart) streams a remote file
// without a GET of the origin; a new version at the origin is fetched, not
// served from the old one's blocks; a damaged entry is fetched again.
func TestBlockCache(t *testing.T) {
	dir, cacheDir := t.TempDir(), t.TempDir()
	data := randomBytes(1<<20+5, 9)
	writeFile(t, dir, "f.bin", data)
	fo := &fileOrigin{dir: dir, requests: map[string]int{}}
	ots := httptest.NewServer(fo)
	defer ots.Close()
	u := ots.URL + "/prefix/?sig=s3cr3t-sig"

	first, ts := startCached(t, fo, u, cacheDir, 1<<30)
	if r := readStream(t, get(t, sseURL(ts.URL, "f.bin")).Body); !bytes.Equal(r.data, data) {
		t.Fatal("first stream differs from the file")
	}
	first.flush()
	gets := fo.count(http.MethodGet)
	bc, ts := startCached(t, fo, u, cacheDir, 1<<30)
	if r := readStream(t, get(t, sseURL(ts.URL, "f.bin")).Body); !bytes.Equal(r.data, data) {
		t.Fatal("stream from the cache differs from the file")
	}
	if n := fo.count(http.MethodGet) - gets; n != 0 {
		t.Errorf("a restarted server made %d GETs of the origin for cached blocks", n)
	}
	if hits, _, hitBytes, _ := bc.Stats(); hits != 17 || hitBytes != int64(len(data)) {
		t.Errorf("%d hits, %d bytes from the cache; want 17 and %d", hits, hitBytes, len(data))
	}

	// A damaged entry is a miss, fetched again.
	bc.flush()
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*", "*-3"))
	if len(entries) != 1 {
		t.Fatalf("entries of block 3: %v", entries)
	}
	b, _ := os.ReadFile(entries[0])
	b[100] ^= 1
	os.WriteFile(entries[0], b, 0o644)
	gets = fo.count(http.MethodGet)
	if r := readStream(t, get(t, sseURL(ts.URL, "f.bin")).Body); !bytes.Equal(r.data, data) {
		t.Fatal("stream over a damaged entry differs from the file")
	}
	if n := fo.count(http.MethodGet) - gets; n != 1 {
		t.Errorf("%d GETs for one damaged entry, want 1", n)
	}

	// A new version shares no entries with the old.
	next := randomBytes(len(data), 10)
	writeFile(t, dir, "f.bin", next)
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "f.bin"), later, later)
	if r := readStream(t, get(t, sseURL(ts.URL, "f.bin")).Body); !bytes.Equal(r.data, next) {
		t.Fatal("after a new version at the origin, the stream is not the new version")
	}
}

// The cache stays within its bound, evicting the least recently used
// block, and a reopened cache knows the order.
func TestBlockCacheEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	bc, err := NewBlockCache(dir, 3*(1000+8))
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	block := func(b byte) []byte { return bytes.Repeat([]byte{b}, 1000) }
	p := make([]byte, 1000)
	bc.put("aa-0", block(1))
	bc.put("bb-0", block(2))
	bc.put("cc-0", block(3))
	bc.flush()
	past := time.Now().Add(-time.Minute)
	for i, n := range []string{"aa-0", "bb-0", "cc-0"} { // mtimes in the order of use
		os.Chtimes(bc.path(n), past.Add(time.Duration(i)*time.Second), past.Add(time.Duration(i)*time.Second))
	}
	if !bc.get("aa-0", p) || !bytes.Equal(p, block(1)) { // aa is now the most recent
		t.Fatal("aa-0 not cached")
	}
	bc.put("dd-0", block(4))
	bc.flush()
	if bc.get("bb-0", p) {
		t.Error("bb-0, the least recently used, was not evicted")
	}
	for _, n := range []string{"aa-0", "cc-0", "dd-0"} {
		if !bc.get(n, p) {
			t.Errorf("%s evicted", n)
		}
	}
	if _, _, _, size := bc.Stats(); size > 3*1008 {
		t.Errorf("holds %d bytes, bound %d", size, 3*1008)
	}
	again, err := NewBlockCache(dir, 2*1008) // a smaller bound after a restart
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, size := again.Stats(); size != 2*1008 {
		t.Errorf("reopened with a bound of 2 blocks: holds %d bytes", size)
	}
	// aa, cc and dd were used in that order: the reopened cache keeps the
	// two used last.
	if again.get("aa-0", p) || !again.get("cc-0", p) || !again.get("dd-0", p) {
		t.Error("reopened: not the two blocks used last kept")
	}
}
