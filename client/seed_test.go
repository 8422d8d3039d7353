package client

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/manifest"
)

// A download with a seed, an older version with an insertion near the
// start and a changed block, copies every block the seed holds, at
// whatever offset, and fetches only the two it does not: the block the
// insertion lands in and the changed one. A manifest without rolling
// checksums (an older server's) still finds the blocks at their own
// offsets. An existing destination replaced with Force seeds the download.
func TestSeed(t *testing.T) {
	const blocks = 64
	newer := randomData(31, blocks*testBS-1000)
	older := bytes.Clone(newer)
	copy(older[30*testBS:], randomData(32, testBS)) // block 30 changed
	at := 6*testBS + 5000                           // 1 KiB inserted inside block 6
	older = append(older[:at:at], append(randomData(33, 1024), older[at:]...)...)

	f := newFixture(t, map[string][]byte{"f.bin": newer}, nil)
	dir := t.TempDir()
	seedPath := filepath.Join(dir, "old.bin")
	if err := os.WriteFile(seedPath, older, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "new.bin")
	j := testOptions(out)
	j.Seeds = []string{seedPath}
	res, err := j.run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, out, newer, res)
	if want := int64(len(newer) - 2*testBS); res.BytesSeeded != want {
		t.Errorf("BytesSeeded %d, want %d: all but the inserted-into and the changed block", res.BytesSeeded, want)
	}
	if res.BytesFetched > 3*testBS {
		t.Errorf("BytesFetched %d, want at most 3 blocks (2 changed, and what a stream has in flight)", res.BytesFetched)
	}

	// The same seed with the insertion's shift: same offsets find only the
	// blocks before it, and the short last block at the seed's end.
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	book := newLedger(int64(len(newer)), testBS)
	resp, err := http.Get(f.ts.URL + "/manifest/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Decode(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Weak) != blocks {
		t.Fatalf("the manifest has %d rolling checksums for %d blocks", len(m.Weak), blocks)
	}
	m.Weak = nil
	n, err := seedFrom(context.Background(), seedPath, m, discardAt{}, book)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(6*testBS + len(newer)%testBS); n != want {
		t.Errorf("same offsets only: %d bytes found, want the 6 blocks before the insertion and the last (%d)", n, want)
	}

	// --force over an existing copy of the old version seeds from it.
	if err := os.WriteFile(out, older, 0o644); err != nil {
		t.Fatal(err)
	}
	j = testOptions(out)
	j.Force = true
	res, err = j.run(context.Background(), f.url("f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, out, newer, res)
	if res.BytesSeeded != int64(len(newer)-2*testBS) {
		t.Errorf("Force over the old version: BytesSeeded %d, want %d", res.BytesSeeded, len(newer)-2*testBS)
	}

	j = testOptions(filepath.Join(dir, "x.bin"))
	j.Seeds = []string{filepath.Join(dir, "nope.bin")}
	if _, err := j.run(context.Background(), f.url("f.bin")); err == nil {
		t.Error("a seed that does not exist was accepted")
	}
}

// discardAt is an io.WriterAt that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
