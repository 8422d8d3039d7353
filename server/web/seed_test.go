package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// static/seed.js, the browser module's seed search, run by node on the
// case of client.TestSeed: an older version with 1 KiB inserted inside
// block 6 and block 30 changed holds every other block of the new one,
// shifted after the insertion, and seed.js finds each at an offset that
// holds it, including the short last block. Without weak sums (an older
// server's manifest) only the blocks before the insertion are found.
func TestSeedJSFindsShiftedBlocks(t *testing.T) {
	need(t, false)
	const bs = 16 << 10
	const blocks = 64
	newer := sample(31, blocks*bs-1000)
	older := bytes.Clone(newer)
	copy(older[30*bs:], sample(32, bs))
	at := 6*bs + 5000
	older = append(older[:at:at], append(sample(33, 1024), older[at:]...)...)

	m, err := manifest.Build(context.Background(), bytes.NewReader(newer), "f.bin", int64(len(newer)), time.Now(), bs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seedPath := filepath.Join(dir, "old.bin")
	os.WriteFile(seedPath, older, 0o644)
	cases := []struct {
		name   string
		noWeak bool
		want   int
	}{
		{"rolling", false, blocks - 2},
		{"same offsets", true, 6 + 1}, // blocks 0–5 and the short last one
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm := *m
			if tc.noWeak {
				mm.Weak = nil
			}
			mp := filepath.Join(dir, tc.name+".json")
			b, _ := json.Marshal(&mm)
			os.WriteFile(mp, b, 0o644)
			var out struct {
				Found map[string]int64 `json:"found"`
				MS    float64          `json:"ms"`
			}
			node(t, &out, "seed-node.mjs", mp, seedPath)
			if len(out.Found) != tc.want {
				t.Errorf("found %d blocks, want %d", len(out.Found), tc.want)
			}
			for k, off := range out.Found {
				i, _ := strconv.ParseInt(k, 10, 64)
				start, n := chunker.Span(mm.Size, bs, i)
				if off < 0 || off+int64(n) > int64(len(older)) || !bytes.Equal(older[off:off+int64(n)], newer[start:start+int64(n)]) {
					t.Errorf("block %d at seed offset %d: not that block", i, off)
				}
			}
			if !tc.noWeak {
				for _, i := range []string{"6", "30"} {
					if _, ok := out.Found[i]; ok {
						t.Errorf("block %s found, but the seed does not hold it", i)
					}
				}
			}
			t.Logf("%s: %d blocks in %.0f ms", tc.name, len(out.Found), out.MS)
		})
	}
}
