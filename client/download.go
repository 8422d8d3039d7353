package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// download is one Download call. Its states run one at a time on the
// caller's goroutine and own every field; the streams of a pass see a copy
// of the version and report to the pass, and the sink writes the ledger
// only while the coordinator waits for the pass.
type download struct {
	cfg   config
	opts  Options
	url   string
	ep    endpoints
	dst   string
	start time.Time

	part  *partial
	ver   version     // the version being downloaded, once known
	book  *ledger     // what the partial file holds, once the size is known
	order *inOrder    // whole-file digests fed in order, while they are
	plan  plan        // the next pass's, when a state prepared it
	live  *liveFollow // a follow's, while the file is live

	newMan       *manifest.Manifest // another version's manifest a state found
	rounds       versionRounds
	rechecked    string // the etag whose manifest was fetched again for a disagreeing block
	repaired     bool   // the whole-file check already sent us back once
	reason       string // why the next resume happens, for the log
	passFailures int    // passes in a row that verified no block

	hint  retryHint
	meter meter
	res   Result
}

// stateFn is one state of the download; it returns the state that follows,
// nil when the download is done.
type stateFn func(ctx context.Context) (stateFn, error)

func newDownload(cfg config, opts Options, rawURL string, ep endpoints, dst string) *download {
	d := &download{cfg: cfg, opts: opts, url: rawURL, ep: ep, dst: dst, start: time.Now(), part: newPartial(dst)}
	d.meter.size.Store(-1)
	d.meter.onProgress = opts.OnProgress
	d.res = Result{Path: dst, URL: rawURL}
	return d
}

func (d *download) run(ctx context.Context) (*Result, error) {
	defer func() {
		if d.plan.first != nil {
			d.plan.first.close()
		}
		d.part.close()
	}()
	var err error
	for step := d.stat; step != nil; {
		if step, err = step(ctx); err != nil {
			if cause := context.Cause(ctx); cause != nil { // interrupted, or MaxTime
				if errors.Is(cause, ErrTimeout) {
					return nil, cause
				}
				return nil, &InterruptedError{Partial: d.keptPartial(), Cause: cause}
			}
			return nil, err
		}
	}
	d.res.Seconds = time.Since(d.start).Seconds()
	d.res.BytesFetched = d.meter.fetched.Load()
	d.res.BytesReused = d.meter.reused.Load()
	d.res.Reconnects = int(d.meter.reconnects.Load())
	d.res.BlocksRefetched = int(d.meter.refetched.Load())
	return &d.res, nil
}

// keptPartial returns the partial file's path if there is one to resume.
func (d *download) keptPartial() string {
	if d.part.exists() {
		return d.part.path()
	}
	return ""
}

func (d *download) logf(format string, args ...any) {
	if d.opts.Logf != nil {
		d.opts.Logf(format, args...)
	}
}

// stat looks at the destination and at a partial download beside it.
func (d *download) stat(ctx context.Context) (stateFn, error) {
	d.meter.report("connecting")
	if info, err := os.Stat(d.dst); err == nil {
		if info.IsDir() {
			return nil, fmt.Errorf("%w: %s is a directory", ErrUsage, d.dst)
		}
		if !d.opts.Force {
			return d.existing, nil
		}
		if !d.part.exists() && !d.opts.Follow {
			// Replaced with --force: what it holds of the new version is
			// copied, not fetched.
			d.opts.Seeds = append(slices.Clip(d.opts.Seeds), d.dst) // not the caller's array
		}
	}
	if d.opts.Follow {
		return d.followStart, nil
	}
	if d.part.exists() {
		d.res.Resumed = true
		return d.resume, nil
	}
	if len(d.opts.Seeds) > 0 {
		return d.seed, nil
	}
	return d.fresh, nil
}

// existing accepts a destination that already holds the remote file.
func (d *download) existing(ctx context.Context) (stateFn, error) {
	m, err := d.fetchManifest(ctx)
	if err != nil {
		return nil, err
	}
	if m.Live {
		return nil, fmt.Errorf("%w: %s exists, and the remote file is still being written (use --force to replace it)", ErrExists, d.dst)
	}
	f, err := os.Open(d.dst)
	if err != nil {
		return nil, diskError(err)
	}
	defer f.Close()
	bad, dig, err := checkFile(ctx, f, m, d.newSummer())
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 || !dig.Match(m.Digests()) {
		return nil, fmt.Errorf("%w: %s differs from the remote file (use --force to replace it)", ErrExists, d.dst)
	}
	if err := d.checkChecksum(dig.SHA256); err != nil {
		return nil, err
	}
	d.logf("%s is already complete and verified", d.dst)
	d.res.AlreadyComplete = true
	d.res.Size, d.res.SHA256, d.res.XXH3128, d.res.ETag = m.Size, dig.SHA256, m.XXH3128, m.ETag
	d.meter.reused.Store(m.Size)
	d.meter.report("done")
	return nil, nil
}

// fresh opens the first stream of a new download, from block 0, without
// waiting for a manifest; its meta event tells the version. With more
// than one stream it asks for block 0 alone, so that the rest can be split.
func (d *download) fresh(ctx context.Context) (stateFn, error) {
	sp := wholeSpan
	if d.opts.Parallel > 1 {
		sp = probeSpan
	}
	budget := d.newBudget()
	for {
		o, err := d.open(ctx, version{}, sp, 0)
		switch {
		case err == nil && o.tooShort:
			sp = wholeSpan // an empty file: no block 0 to probe
			continue
		case err == nil:
			d.plan.first = o.s
			d.plan.probe = sp == probeSpan
			return d.begin, nil
		case ctx.Err() != nil:
			return nil, context.Cause(ctx)
		}
		if err := budget.record(err); err != nil {
			return nil, err
		}
		d.meter.reconnects.Add(1)
		d.logf("%v; reconnecting at offset 0 (attempt %d)", err, budget.failures+budget.stalls+1)
		if err := budget.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// setUp makes v the download's version and sets up an empty partial file
// and ledger for it.
func (d *download) setUp(v version) error {
	d.ver = v
	d.rounds.saw(v.ETag)
	if err := d.part.checkSpace(v.Size); err != nil {
		return err
	}
	if err := d.part.open(v.Size); err != nil {
		return err
	}
	if err := d.part.saveState(d.ver.state(d.url)); err != nil {
		return err
	}
	d.book = newLedger(v.Size, v.BlockSize)
	d.meter.size.Store(v.Size)
	return nil
}

// begin sets up the partial file for the version the first stream's meta
// event told, and plans the first pass.
func (d *download) begin(ctx context.Context) (stateFn, error) {
	m := d.plan.first.meta
	if err := d.setUp(version{ETag: m.ETag, Size: m.Size, BlockSize: m.BlockSize}); err != nil {
		return nil, err
	}
	d.order = newInOrder(d.opts.SHA256)
	d.meter.report("downloading")
	bs := int64(m.BlockSize)
	if d.plan.probe && m.Size > bs {
		// The probe's stream takes block 0; the others share the rest.
		d.plan.shares = append([][]span{{{0, bs}}}, split([]span{{bs, m.Size}}, d.opts.Parallel, bs)...)
	} else {
		d.plan.shares, d.plan.probe = [][]span{{{0, m.Size}}}, false
	}
	return d.fetch, nil
}

// resume fetches the manifest to check a partial file, and decides
// whether the remote file is the version the partial file began with.
func (d *download) resume(ctx context.Context) (stateFn, error) {
	saved := d.part.loadState()
	m, err := d.fetchManifest(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case saved == nil:
		d.logf("found %s without state; reusing the blocks in it that verify", d.part.path())
	case saved.ETag != m.ETag && d.opts.Strict:
		return nil, fmt.Errorf("%w: %s was version %s, the server now has %s (--strict)", ErrRemoteChanged, d.url, saved.ETag, m.ETag)
	case saved.ETag != m.ETag:
		d.logf("remote file changed since the partial download (%s → %s); keeping the blocks that still match", saved.ETag, m.ETag)
	}
	d.reason = "remote unchanged"
	if saved == nil || saved.ETag != m.ETag {
		d.reason = "remote changed"
	}
	if saved != nil {
		d.rounds.saw(saved.ETag)
	}
	d.rounds.saw(m.ETag)
	d.ver = versionOf(m)
	return d.verifyDisk, nil
}

// verifyDisk hashes the blocks of the partial file against the manifest.
func (d *download) verifyDisk(ctx context.Context) (stateFn, error) {
	m := d.ver.man
	d.meter.report("verifying")
	if err := d.part.open(m.Size); err != nil {
		return nil, err
	}
	if err := d.part.saveState(d.ver.state(d.url)); err != nil {
		return nil, err
	}
	d.book = newLedger(m.Size, m.BlockSize)
	if err := hashBlocks(ctx, d.part, d.book); err != nil {
		return nil, err
	}
	d.book = d.book.rebase(m)
	d.order = nil // blocks will not arrive in order from 0: the file is hashed at the end
	d.meter.reused.Add(d.book.bytes())
	return d.planMissing()
}

// adopt moves the download to the version of manifest m, keeping the blocks
// on disk that m says belong to it, without reading them again.
func (d *download) adopt(m *manifest.Manifest) (stateFn, error) {
	changed := m.ETag != d.ver.ETag
	d.ver = versionOf(m)
	if d.book == nil || d.book.bs != m.BlockSize {
		return d.verifyDisk, nil // another block size: every block is hashed anew
	}
	if err := d.part.open(m.Size); err != nil {
		return nil, err
	}
	if err := d.part.saveState(d.ver.state(d.url)); err != nil {
		return nil, err
	}
	d.book = d.book.rebase(m)
	d.order = nil
	if changed {
		d.meter.reused.Add(d.book.bytes())
	}
	return d.planMissing()
}

// planMissing plans a pass over the blocks not on disk, after the partial
// file was checked against a manifest.
func (d *download) planMissing() (stateFn, error) {
	d.meter.size.Store(d.ver.Size)
	d.meter.done.Store(d.book.bytes())
	good, blocks := d.book.count(), d.ver.blocks()
	if d.reason != "" {
		d.logf("resuming at block %d/%d, %s (%d blocks on disk verified, %d to fetch)", d.book.firstMissing(), blocks, d.reason, good, blocks-good)
		d.reason = ""
	}
	if err := d.part.checkSpace(d.ver.Size - d.book.bytes()); err != nil {
		return nil, err
	}
	d.plan = plan{}
	return d.fetch, nil
}

// fetch runs a pass over the planned spans, or the missing ones.
func (d *download) fetch(ctx context.Context) (stateFn, error) {
	pl := d.plan
	d.plan = plan{}
	if pl.shares == nil {
		missing := d.book.missing()
		if len(missing) == 0 {
			return d.whole, nil
		}
		pl.shares = split(missing, d.opts.Parallel, int64(d.ver.BlockSize))
	}
	d.meter.report("downloading")
	before := d.book.count()
	p := d.runPass(ctx, pl)
	switch {
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case p.err != nil:
		return nil, p.err
	case p.changed:
		d.rounds.saw(p.etag)
		return d.changed, nil
	}
	d.ver.end = p.end
	if p.disagreed && d.rechecked != d.ver.ETag {
		return d.recheck, nil
	}
	if d.book.count() == int64(len(d.book.have)) {
		return d.whole, nil
	}
	// Blocks failed verification and were dropped: fetch them again, as
	// long as passes keep verifying some.
	if d.book.count() > before {
		d.passFailures = 0
	} else if d.passFailures++; d.passFailures > d.cfg.retries {
		return nil, fmt.Errorf("%w: blocks kept failing verification after %d retries", ErrIntegrity, d.cfg.retries)
	}
	if err := sleep(ctx, d.hint.backoff(d.passFailures, 0)); err != nil {
		return nil, err
	}
	return d.fetch, nil
}

// recheck fetches the manifest again when a block matched its event but not
// the manifest: the manifest may be what was damaged in transit.
func (d *download) recheck(ctx context.Context) (stateFn, error) {
	d.rechecked = d.ver.ETag
	m, other, err := d.sameVersionManifest(ctx)
	if other != nil || err != nil {
		return other, err
	}
	d.logf("fetched the manifest again: a block disagreed with it")
	return d.adopt(m)
}

// changed follows the remote file to another version, keeping the blocks
// on disk that still match, or stops with Strict. A remote that keeps
// changing, or servers behind one URL that disagree about the version, get
// backoff and Retries rounds like any other failure.
func (d *download) changed(ctx context.Context) (stateFn, error) {
	if d.opts.Strict {
		return nil, fmt.Errorf("%w: %s changed during the download (--strict)", ErrRemoteChanged, d.url)
	}
	if err := d.rounds.next(d.cfg.retries, d.url); err != nil {
		return nil, err
	}
	m := d.newMan
	d.newMan = nil
	if m == nil {
		if err := sleep(ctx, d.hint.backoff(d.rounds.n, 0)); err != nil {
			return nil, err
		}
		var err error
		if m, err = d.fetchManifest(ctx); err != nil {
			return nil, err
		}
		d.rounds.saw(m.ETag)
	}
	if m.ETag == d.ver.ETag {
		d.logf("the server answered for another version of the file, but its manifest is still %s; trying again", m.ETag)
	} else {
		d.logf("remote file changed during the download; keeping the blocks that still match")
		d.reason = "remote changed"
	}
	return d.adopt(m)
}

// whole checks the digests of the complete file.
func (d *download) whole(ctx context.Context) (stateFn, error) {
	d.meter.report("finishing")
	got, ok := d.order.digests(d.ver.Size)
	if !ok {
		var err error
		if got, err = digestFile(ctx, d.part, d.ver.Size, d.newSummer()); err != nil {
			return nil, err
		}
	}
	want, ok := d.ver.digests()
	if !ok || !got.Match(want) {
		if ok && d.repaired {
			return nil, fmt.Errorf("%w: file digests xxh3-128 %s sha256 %q, server says %s and %s", ErrIntegrity, got.XXH3128, got.SHA256, want.XXH3128, want.SHA256)
		}
		// No digests (the stream was cut after its last block, before its
		// end event), or every block verified and yet the file does not: an
		// end event damaged in transit, or a server whose blocks and
		// digests disagree. The manifest arbitrates.
		return d.arbitrate(ctx, ok)
	}
	if err := d.checkChecksum(got.SHA256); err != nil {
		return nil, err
	}
	d.res.Size, d.res.SHA256, d.res.XXH3128, d.res.ETag = d.ver.Size, got.SHA256, got.XXH3128, d.ver.ETag
	return d.finish, nil
}

// arbitrate fetches the manifest for whole: for the digests it lacked, or,
// once, to check every block on disk against it when the digests did not
// match (mismatch).
func (d *download) arbitrate(ctx context.Context, mismatch bool) (stateFn, error) {
	if mismatch {
		d.logf("whole-file digest does not match; checking every block against the manifest")
		d.repaired = true
	}
	m, other, err := d.sameVersionManifest(ctx)
	if other != nil || err != nil {
		return other, err
	}
	d.ver.man = m
	if mismatch {
		d.reason = "repairing"
		return d.verifyDisk, nil
	}
	return d.whole, nil
}

// sameVersionManifest fetches the manifest of the version being downloaded.
// If the server has another version, it returns the changed state instead,
// which adopts that manifest.
func (d *download) sameVersionManifest(ctx context.Context) (*manifest.Manifest, stateFn, error) {
	m, err := d.fetchManifest(ctx)
	if err != nil {
		return nil, nil, err
	}
	if m.ETag != d.ver.ETag {
		d.newMan = m
		d.rounds.saw(m.ETag)
		return nil, d.changed, nil
	}
	return m, nil, nil
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

// newSummer returns a Summer of the digests this download checks.
func (d *download) newSummer() *manifest.Summer {
	if d.opts.SHA256 {
		return manifest.NewSummer()
	}
	return manifest.NewXXH3Summer()
}

// finish makes the file durable and moves it into place.
func (d *download) finish(ctx context.Context) (stateFn, error) {
	if err := d.part.commit(d.opts.Force); err != nil {
		return nil, err
	}
	d.meter.done.Store(d.ver.Size)
	d.meter.report("done")
	return nil, nil
}

// hashBlocks records in book the hash of every block the partial file
// holds.
func hashBlocks(ctx context.Context, f *partial, book *ledger) error {
	c, err := chunker.New(f, book.size, book.bs)
	if err != nil {
		return err
	}
	for i := range c.Count() {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if _, b, err := c.Block(i); err == nil {
			book.hashed(i, chunker.Hash(b))
		}
	}
	return nil
}

// meter counts what a download did, for Progress and Result; the streams
// and the sink update it as they go.
type meter struct {
	size                                         atomic.Int64
	fetched, reused, done, reconnects, refetched atomic.Int64

	onProgress func(Progress)
	mu         sync.Mutex
	phase      string
}

func (m *meter) addDone(n int) {
	m.done.Add(int64(n))
	m.report("")
}

// report calls OnProgress, one call at a time, with a new phase if not "".
func (m *meter) report(phase string) {
	if m.onProgress == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if phase != "" {
		m.phase = phase
	}
	m.onProgress(Progress{
		Phase: m.phase, Size: m.size.Load(), Done: m.done.Load(), Fetched: m.fetched.Load(),
		Reused: m.reused.Load(), Reconnects: int(m.reconnects.Load()), Refetched: int(m.refetched.Load()),
	})
}
