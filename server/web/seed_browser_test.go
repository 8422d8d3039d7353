package web_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/chunker"
)

// The seed tests download a new version of a file in the page while the
// browser has an older copy: the finished download of the previous version
// kept in OPFS, or a file picked in "Update from a copy I have". The blocks
// of the new version found in the copy are copied, checked against the
// manifest, and only the rest is streamed (docs/BROWSER.md, seeds).

const seedFileSize = 16 << 20

// seedCard is what test/seed.mjs reports of a download card.
type seedCard struct {
	card
	Seeded  int64  `json:"seeded,string"`  // the card's data-seeded
	Fetched int64  `json:"fetched,string"` // the card's data-fetched
	Text    string `json:"text"`           // the card's line of figures
	Log     []struct {
		Kind      string  `json:"kind"`
		MS        float64 `json:"ms"`        // verified after seeding: all of it
		FindMS    float64 `json:"findMs"`    // seeded: findBlocks over one seed
		SeedBytes int64   `json:"seedBytes"` // seeded: that seed's size
	} `json:"log"`
}

// seedMS returns how long the page took to find and copy the seeds'
// blocks, and how long findBlocks took per MiB of seed, from its log.
func (c seedCard) seedMS() (all, findPerMiB float64) {
	var find float64
	var seeds int64
	for _, e := range c.Log {
		switch e.Kind {
		case "verified":
			all = max(all, e.MS)
		case "seeded":
			find += e.FindMS
			seeds += e.SeedBytes
		}
	}
	if seeds > 0 {
		findPerMiB = find / (float64(seeds) / (1 << 20))
	}
	return all, findPerMiB
}

// seedOut is what test/seed.mjs prints.
type seedOut struct {
	First   seedCard `json:"first"` // auto: version 1
	Card    seedCard `json:"card"`
	OPFS    []string `json:"opfs"`    // the downloads' OPFS folder at the end
	Refused string   `json:"refused"` // ferry.download with seeds and follow
}

// checkOut checks what every run of seed.mjs reports beside its card: one
// download left in OPFS, its data and state, no seed set aside, and seeds
// with follow refused, saying why.
func checkOut(t *testing.T, out seedOut) {
	t.Helper()
	if len(out.OPFS) != 2 || !strings.HasSuffix(out.OPFS[0], ".part") || !strings.HasSuffix(out.OPFS[1], ".state") {
		t.Errorf("OPFS holds %q at the end, want one download's .part and .state", out.OPFS)
	}
	if !strings.HasPrefix(out.Refused, "TypeError") || !strings.Contains(out.Refused, "follow") {
		t.Errorf("ferry.download with seeds and follow: %q, want a TypeError about follow", out.Refused)
	}
}

// versions returns an older version of a file and a newer one: 1 % of the
// older's blocks changed (at least one, in its second half), then 1 KiB
// inserted at 10 %, which shifts every block after it. changed is the bytes
// of new data (changes and insertion), changes how many places differ.
func versions(size, bs int) (older, newer []byte, changed int64, changes int) {
	older = sample(41, size)
	newer = bytes.Clone(older)
	n := max(1, size/bs/100)
	for k := range n {
		i := size/bs/2 + k*(size/bs/2)/n
		copy(newer[i*bs:], sample(uint64(42+k), bs))
	}
	at := size / 10
	newer = append(newer[:at:at], append(sample(99, 1024), newer[at:]...)...)
	return older, newer, int64(n*bs + 1024), n + 1
}

// notIn returns the blocks of newer (in blocks of bs) that older holds
// nowhere: what a download seeded by older must fetch.
func notIn(older, newer []byte, bs int) []int64 {
	var out []int64
	for i := int64(0); i*int64(bs) < int64(len(newer)); i++ {
		start, n := chunker.Span(int64(len(newer)), bs, i)
		if !bytes.Contains(older, newer[start:start+int64(n)]) {
			out = append(out, i)
		}
	}
	return out
}

// servedBlocks returns the blocks the server's stream log lines sent.
func servedBlocks(streams []streamLog, bs int) []int64 {
	var out []int64
	for _, st := range streams {
		for k := range st.Blocks {
			out = append(out, st.Start/int64(bs)+k)
		}
	}
	slices.Sort(out)
	return out
}

// checkSeeded checks a seeded download: byte-identical, the bytes the page
// says it fetched those the server's streams sent, every block the seed
// lacks among them and at most one more per stream, within the bound of
// the changed data, and the rest copied from the seed.
func checkSeeded(t *testing.T, c seedCard, streams []streamLog, older, newer []byte, changed int64, changes int) {
	t.Helper()
	checkIdentical(t, "seeded", c.card, newer)
	size := int64(len(newer))
	need := notIn(older, newer, blockSize)
	served := servedBlocks(streams, blockSize)
	var sent int64
	for _, i := range served {
		_, n := chunker.Span(size, blockSize, i)
		sent += int64(n)
	}
	if c.Fetched != sent {
		t.Errorf("page fetched %d bytes of blocks, the server's streams sent %d", c.Fetched, sent)
	}
	for _, i := range need {
		if !slices.Contains(served, i) {
			t.Errorf("block %d, which the seed lacks, was never sent", i)
		}
	}
	if extra := len(served) - len(need); extra > len(streams) {
		t.Errorf("server sent blocks %v; the seed lacks only %v (more than one extra per stream, %d streams)", served, need, len(streams))
	}
	bound := int64(1.1*float64(changed)) + int64((changes+len(streams))*blockSize)
	if c.Fetched > bound {
		t.Errorf("fetched %d bytes for %d bytes changed in %d places over %d streams, want at most %d", c.Fetched, changed, changes, len(streams), bound)
	}
	if c.Seeded != size-c.Fetched {
		t.Errorf("%d bytes copied from the seed, want the %d not fetched", c.Seeded, size-c.Fetched)
	}
	if !strings.Contains(c.Text, "copied from") {
		t.Errorf("the card says %q, nothing of what was copied from the seed", c.Text)
	}
	all, find := c.seedMS()
	t.Logf("%d of %d bytes copied from the seed, %d fetched (bound %d; %d changed in %d places) in %d streams; seeding took %.0f ms, findBlocks %.1f ms per MiB of seed",
		c.Seeded, size, c.Fetched, bound, changed, changes, len(streams), all, find)
}

// TestBrowserSeedFromOPFS downloads version 1 of a file, replaces it on the
// server with version 2, and presses the file's Update button in the same
// profile: the finished version 1 in OPFS seeds version 2, and only the
// blocks it lacks are streamed.
func TestBrowserSeedFromOPFS(t *testing.T) {
	need(t, true)
	older, newer, changed, changes := versions(seedFileSize, blockSize)
	s := startSite(t, map[string][]byte{"disk.img": older}, nil)
	next := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(next, newer, 0o644); err != nil {
		t.Fatal(err)
	}
	var out seedOut
	node(t, &out, "seed.mjs", s.base, "disk.img", "auto", s.root, next)
	checkOut(t, out)
	checkIdentical(t, "version 1", out.First.card, older)
	if out.First.Seeded != 0 || out.First.Fetched != int64(len(older)) {
		t.Errorf("version 1: %d bytes seeded, %d fetched, want 0 and %d", out.First.Seeded, out.First.Fetched, len(older))
	}
	first := out.First.Progress.Streams
	logged := s.log.waitStreams(t, "disk.img", first+1)
	if len(logged) <= first {
		t.Fatalf("server logged %d streams, want version 1's %d and more", len(logged), first)
	}
	checkSeeded(t, out.Card, logged[first:], older, newer, changed, changes)
}

// TestBrowserSeedFromFileInput gives the older version through the page's
// file input, in a fresh profile.
func TestBrowserSeedFromFileInput(t *testing.T) {
	need(t, true)
	older, newer, changed, changes := versions(seedFileSize, blockSize)
	s := startSite(t, map[string][]byte{"disk.img": newer}, nil)
	seed := filepath.Join(t.TempDir(), "disk-1.0.img")
	if err := os.WriteFile(seed, older, 0o644); err != nil {
		t.Fatal(err)
	}
	var out seedOut
	node(t, &out, "seed.mjs", s.base, "disk.img", "input", seed)
	checkOut(t, out)
	logged := s.log.waitStreams(t, "disk.img", 1)
	checkSeeded(t, out.Card, logged, older, newer, changed, changes)
	if !strings.Contains(out.Card.Text, "disk-1.0.img") {
		t.Errorf("the card says %q, not that the bytes came from disk-1.0.img", out.Card.Text)
	}
}

// TestBrowserSeedHoldingNothing gives a seed that holds no block of the
// file: everything is fetched, the file is still identical. Its seeding
// time is the rolling search's worst case: no block found, every byte
// rolled.
func TestBrowserSeedHoldingNothing(t *testing.T) {
	need(t, true)
	_, newer, _, _ := versions(seedFileSize, blockSize)
	s := startSite(t, map[string][]byte{"disk.img": newer}, nil)
	other := sample(77, seedFileSize)
	seed := filepath.Join(t.TempDir(), "other.img")
	if err := os.WriteFile(seed, other, 0o644); err != nil {
		t.Fatal(err)
	}
	var out seedOut
	node(t, &out, "seed.mjs", s.base, "disk.img", "input", seed)
	checkOut(t, out)
	c := out.Card
	checkIdentical(t, "disk.img", c.card, newer)
	if c.Seeded != 0 || c.Fetched != int64(len(newer)) {
		t.Errorf("%d bytes seeded, %d fetched, want 0 and %d", c.Seeded, c.Fetched, len(newer))
	}
	logged := s.log.waitStreams(t, "disk.img", 1)
	if sent := len(servedBlocks(logged, blockSize)); sent != len(notIn(other, newer, blockSize)) {
		t.Errorf("server sent %d blocks, want all %d", sent, len(notIn(other, newer, blockSize)))
	}
	all, find := c.seedMS()
	t.Logf("seeding over %d MiB that hold nothing took %.0f ms, findBlocks %.1f ms per MiB", len(other)>>20, all, find)
}
