package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/server/servertest"
)

// ferry get --seed, through a proxy that cuts the first connections: the
// new version is built from an older copy shifted by an insertion (and
// an unrelated seed that holds nothing), only the blocks the old copy lacks
// are fetched, and --json and the summary line say how much was copied.
func TestSeedFlag(t *testing.T) {
	const blocks = 48
	newer := randomData(40, blocks*testBS)
	older := bytes.Clone(newer)
	copy(older[20*testBS:], randomData(41, 100)) // block 20 changed
	at := 3*testBS + 77                          // 1 KiB inserted inside block 3
	older = append(older[:at:at], append(randomData(42, 1024), older[at:]...)...)

	f := newFixture(t, newer, func(i int) servertest.Fault {
		if i < 2 {
			return servertest.Fault{CutAt: 3000}
		}
		return servertest.Fault{}
	})
	dir := t.TempDir()
	seed, other := filepath.Join(dir, "old.bin"), filepath.Join(dir, "other.bin")
	os.WriteFile(seed, older, 0o644)
	os.WriteFile(other, randomData(43, 5*testBS), 0o644)
	out := filepath.Join(dir, "new.bin")
	code, stdout, stderr := ferry(t, "get", f.url(), "-o", out, "--seed", other, "--seed", seed, "--json", "--progress", "line")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var s struct {
		summary
		BytesSeeded int64 `json:"bytes_seeded"`
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	if s.SHA256 != sha(newer) {
		t.Fatal("the result is not the new version")
	}
	if want := int64(len(newer) - 2*testBS); s.BytesSeeded != want {
		t.Errorf("bytes_seeded %d, want %d (all but blocks 3 and 20)", s.BytesSeeded, want)
	}
	if s.BytesFetched > 4*testBS {
		t.Errorf("bytes_fetched %d, want at most the 2 missing blocks and one per cut", s.BytesFetched)
	}
	if !strings.Contains(stderr, "copied from seeds") {
		t.Errorf("the summary line does not say what the seeds gave:\n%s", stderr)
	}

	if code, _, stderr := ferry(t, "get", f.url(), "-o", filepath.Join(dir, "x.bin"), "--seed", filepath.Join(dir, "nope")); code != exitUsage {
		t.Errorf("a missing seed: exit %d, want %d\n%s", code, exitUsage, stderr)
	}
}
