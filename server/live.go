package server

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/manifest"
)

// A live file is one still being written, which ?follow=1 streams as it
// grows (docs/PROTOCOL.md, "Live files"). Every live file being followed
// has one tracker, shared by its streams and manifest requests: it hashes
// each block once, in order, as the block becomes complete, and tells the
// streams when there is more. So 100 followers of one file cost one
// hashing pass and one inotify watch, and each follower only reads and
// sends.

// livePoll is how often a tracker looks at its file without being told
// to: the net under inotify, and all there is where inotify is not.
const livePoll = 500 * time.Millisecond

// liveKey is a live file's identity: its version until it is complete.
type liveKey struct {
	dev, ino uint64
	bs       int
}

// liveFiles is the registry of the trackers of a server.
type liveFiles struct {
	w *watcher // nil: poll only

	mu sync.Mutex
	m  map[liveKey]*tracker
	// gen counts the times a file of the same identity was truncated or
	// rewritten under its followers: each time is a new version, with a
	// new etag, so that a pinned reconnect learns of it (412).
	gen map[liveKey]int
}

func newLiveFiles() *liveFiles {
	return &liveFiles{w: newWatcher(), m: map[liveKey]*tracker{}, gen: map[liveKey]int{}}
}

func (l *liveFiles) close() { l.w.close() }

// etag returns the live etag of k's current generation.
func (l *liveFiles) etag(k liveKey) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return liveETag(k, l.gen[k])
}

// liveETag is "l" hex(device) "-" hex(inode) "-" hex(block size), and
// "-" hex(generation) after a truncation.
func liveETag(k liveKey, gen int) string {
	b := []byte{'l'}
	b = strconv.AppendUint(b, k.dev, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, k.ino, 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(k.bs), 16)
	if gen > 0 {
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(gen), 16)
	}
	return string(b)
}

// isLiveETag reports whether a pin names a live etag.
func isLiveETag(pin string) bool {
	for t := range strings.SplitSeq(pin, ",") {
		if t = strings.Trim(strings.TrimSpace(t), `"`); strings.HasPrefix(t, "l") {
			return true
		}
	}
	return false
}

// recheck is the tracker's own event beside the watcher's: look whether
// anyone still writes the file, without having seen a close.
const recheck = 1 << 8

// Tracker states.
const (
	trackLive = iota
	trackComplete
	trackChanged
)

// tracker follows one live file.
type tracker struct {
	s    *Server
	key  liveKey
	etag string
	rel  string // the name asked for
	temp string // the temporary name being followed, "" if rel itself
	f    *os.File
	refs int // under liveFiles.mu

	watches       []*watchSub
	kick          chan struct{} // a watch saw something: look now
	stop, stopped chan struct{}

	mu      sync.Mutex
	signals int // watch events since the tracker last looked
	snap    liveSnap
	wake    chan struct{} // closed when snap changes

	// The tracker goroutine's own.
	sum    *manifest.Summer
	grewAt time.Time
	buf    []byte     // one block, read into by each look
	check  []byte     // one block, to read the last one again into
	last   []byte     // the last whole block hashed, to catch a rewrite
	tail   *tailBlock // the short last block, hashed once complete
}

type tailBlock struct {
	hash manifest.Hash
	weak uint32
}

// liveSnap is what a tracker has found so far.
type liveSnap struct {
	status int
	size   int64 // bytes on disk when last looked
	blocks int64 // blocks hashed: whole ones while live, all once complete
	hashes []manifest.Hash
	weak   []uint32
	final  *manifest.Manifest // once complete
}

// snapshot returns what the tracker has found and a channel closed when
// that changes.
func (t *tracker) snapshot() (liveSnap, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap, t.wake
}

func (t *tracker) publish(update func(*liveSnap)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	update(&t.snap)
	close(t.wake)
	t.wake = make(chan struct{})
}

// follow returns the tracker of rel (or of temp, its temporary name, if
// not ""), whose identity is key, starting one if there is none. A file
// already complete whose manifest is known (done) is not read again. The
// caller releases the tracker.
func (l *liveFiles) follow(s *Server, key liveKey, rel, temp string, done *manifest.Manifest, writing bool) (*tracker, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.m[key]; t != nil {
		if snap, _ := t.snapshot(); !writing || snap.status != trackComplete {
			t.refs++
			return t, nil
		}
		// Complete, and written again: another version of the same inode.
		delete(l.m, key)
		l.gen[key]++
	}
	name := rel
	if temp != "" {
		name = temp
	}
	f, err := s.dir.root.Open(name)
	if err != nil {
		return nil, errNotFound
	}
	info, err := f.Stat()
	if err != nil || liveKeyOf(info, key.bs) != key {
		f.Close()
		return nil, errChangedVersion // replaced between two looks
	}
	t := &tracker{
		s: s, key: key, etag: liveETag(key, l.gen[key]), rel: rel, temp: temp, f: f, refs: 1,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		wake: make(chan struct{}), sum: manifest.NewSummer(), grewAt: time.Now(),
	}
	t.snap.size = info.Size()
	abs := filepath.Join(s.dir.abs, name)
	if sub, err := l.w.watchFile(abs, t.poke); err == nil {
		t.watches = append(t.watches, sub)
	}
	if sub, err := l.w.watchDir(filepath.Dir(filepath.Join(s.dir.abs, rel)), t.poke); err == nil {
		t.watches = append(t.watches, sub)
	}
	l.m[key] = t
	if done != nil {
		t.completeFrom(done)
		close(t.stopped)
		return t, nil
	}
	go t.run()
	return t, nil
}

// release drops a reference; the last one stops the tracker.
func (l *liveFiles) release(t *tracker) {
	l.mu.Lock()
	t.refs--
	last := t.refs == 0
	if last && l.m[t.key] == t {
		delete(l.m, t.key)
	}
	l.mu.Unlock()
	if !last {
		return
	}
	close(t.stop)
	<-t.stopped
	for _, sub := range t.watches {
		l.w.remove(sub)
	}
	t.f.Close()
}

// changed retires a tracker whose file was truncated or rewritten: the
// next follower starts another, under the next generation's etag.
func (l *liveFiles) changed(t *tracker) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[t.key] == t {
		delete(l.m, t.key)
		l.gen[t.key]++
	}
}

func liveKeyOf(info os.FileInfo, bs int) liveKey {
	return liveKey{dev: device(info), ino: inode(info), bs: bs}
}

// poke is the tracker's watch callback, on the watcher's goroutine.
func (t *tracker) poke(ev int, name string) {
	if ev&renamed != 0 && name != filepath.Base(t.rel) {
		return // another file of the folder
	}
	t.mu.Lock()
	t.signals |= ev
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// run looks at the file whenever a watch says something happened, and
// every livePoll, until the file is complete or changed, or the tracker
// is stopped.
func (t *tracker) run() {
	defer close(t.stopped)
	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	sig := recheck // ask the kernel at once whether anyone writes it
	for {
		t.mu.Lock()
		sig |= t.signals
		t.signals = 0
		t.mu.Unlock()
		status := t.look(sig)
		if status == trackChanged {
			t.s.live.changed(t)
		}
		if status != trackLive {
			return
		}
		sig = 0
		select {
		case <-t.kick:
		case <-tick.C:
			sig |= recheck // a close may have gone unseen: ask the kernel again
		case <-t.stop:
			return
		}
	}
}

// look hashes what the file gained since the last look and decides
// whether it is complete, changed, or still live.
func (t *tracker) look(sig int) int {
	info, err := t.f.Stat()
	if err != nil {
		return t.fail()
	}
	snap, _ := t.snapshot()
	hashed := snap.blocks * int64(t.key.bs)
	if info.Size() < hashed || !t.lastStill() {
		return t.fail() // truncated, or rewritten below what was sent
	}
	if !t.nameStill() {
		return t.fail() // deleted, or another file put in its place
	}
	complete := t.completed(sig, info)
	if info.Size() > snap.size {
		t.grewAt = time.Now()
	}
	switch t.hash(info.Size(), complete) {
	case hashChanged:
		return t.fail()
	case hashStopped:
		return trackLive // stopped, or a read failed: look again
	}
	if complete {
		return t.complete()
	}
	t.publish(func(s *liveSnap) { s.size = max(s.size, info.Size()) })
	return trackLive
}

// completed reports whether the writing is over: the temporary name was
// renamed to the name followed, or no process writes the file any more,
// or it did not grow for FollowIdle.
func (t *tracker) completed(sig int, info os.FileInfo) bool {
	if t.temp != "" && t.renamed() {
		return true
	}
	if t.temp == "" && sig&(closedWrite|recheck) != 0 {
		writer, known := hasWriter(t.f)
		if known && !writer || !known && sig&closedWrite != 0 {
			return true // nobody writes it; or, where the kernel cannot say, its writer closed it
		}
	}
	snap, _ := t.snapshot()
	return info.Size() == snap.size && time.Since(t.grewAt) >= t.s.cfg.FollowIdle
}

// renamed reports whether the name followed now is the temporary file.
func (t *tracker) renamed() bool {
	info, err := t.s.dir.root.Stat(t.rel)
	return err == nil && liveKeyOf(info, t.key.bs) == t.key
}

// nameStill reports whether the file still goes by a name it was followed
// by.
func (t *tracker) nameStill() bool {
	if t.renamed() {
		return true
	}
	if t.temp == "" {
		return false
	}
	info, err := t.s.dir.root.Stat(t.temp)
	return err == nil && liveKeyOf(info, t.key.bs) == t.key
}

// lastStill reports whether the last block hashed still holds the same
// bytes: a file truncated and written again past it shows here.
func (t *tracker) lastStill() bool {
	if t.last == nil {
		return true
	}
	snap, _ := t.snapshot()
	buf := t.blockIn(&t.check, len(t.last))
	_, err := t.f.ReadAt(buf, (snap.blocks-1)*int64(t.key.bs))
	return err == nil && string(buf) == string(t.last)
}

// block returns the tracker's read buffer, n bytes long.
func (t *tracker) block(n int) []byte { return t.blockIn(&t.buf, n) }

// blockIn returns *b, made a block long if it is shorter, cut to n bytes.
func (t *tracker) blockIn(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, t.key.bs)
	}
	return (*b)[:n]
}

// What hash did.
const (
	hashDone    = iota
	hashStopped // stopped, or a read failed
	hashChanged // the file was truncated or written again while it read
)

// hash hashes the whole blocks between the last look and size, and the
// short last one too if complete, publishing each.
//
// A block read short means the file was truncated since the look began.
// A block read in full may still be of a file truncated and written again
// since: a writer that got past this block wrote the one before it too,
// so that one is read again and must hold what was hashed (under load, a
// browser follower was once handed a block of the second build as one of
// the first, and failed on the whole file's digest).
func (t *tracker) hash(size int64, complete bool) int {
	bs := int64(t.key.bs)
	snap, _ := t.snapshot()
	buf := t.block(int(bs))
	for i := snap.blocks; i*bs < size; i++ {
		n := min(bs, size-i*bs)
		if n < bs && !complete {
			break
		}
		select {
		case <-t.stop:
			return hashStopped
		default:
		}
		k, err := t.f.ReadAt(buf[:n], i*bs)
		switch {
		case int64(k) < n && (err == nil || errors.Is(err, io.EOF)):
			return hashChanged
		case err != nil && !errors.Is(err, io.EOF):
			return hashStopped
		case !t.lastStill():
			return hashChanged
		}
		raw := buf[:n]
		h, w := manifest.Hash(chunker.Hash(raw)), chunker.Weak(raw)
		t.sum.Write(raw)
		if n < bs {
			t.tail = &tailBlock{h, w} // published with the final manifest: streams see whole blocks until then
			break
		}
		t.last = append(t.last[:0], raw...)
		t.publish(func(s *liveSnap) {
			s.hashes, s.weak, s.blocks = append(s.hashes, h), append(s.weak, w), i+1
		})
	}
	return hashDone
}

// complete publishes the final manifest, and puts it in the server's
// cache for the ordinary requests of the finished file.
func (t *tracker) complete() int {
	info, err := t.f.Stat()
	if err != nil {
		return t.fail()
	}
	snap, _ := t.snapshot()
	if t.tail != nil {
		snap.hashes, snap.weak, snap.blocks = append(snap.hashes, t.tail.hash), append(snap.weak, t.tail.weak), snap.blocks+1
	}
	if chunker.Count(info.Size(), t.key.bs) != snap.blocks {
		// Written again after its writer closed it, while the tail was
		// hashed: the short block sent is no longer the file's.
		return t.fail()
	}
	d := t.sum.Digests()
	m := &manifest.Manifest{
		Version: manifest.Version, Path: t.rel, Size: info.Size(), BlockSize: t.key.bs, Blocks: snap.blocks,
		MTime: info.ModTime().UTC(), ETag: t.etag, Hashes: snap.hashes, Weak: snap.weak, XXH3128: d.XXH3128, SHA256: d.SHA256,
	}
	if t.temp == "" || t.renamed() {
		done := *m
		li := localInfo(t.rel, info)
		done.ETag = li.etag(t.key.bs)
		t.s.cache.Put(li.key(t.key.bs), &done)
	}
	t.s.log.Info("live file complete", "path", t.rel, "etag", t.etag, "size", info.Size())
	t.publish(func(s *liveSnap) {
		s.status, s.size, s.final = trackComplete, info.Size(), m
		s.blocks, s.hashes, s.weak = snap.blocks, snap.hashes, snap.weak
	})
	return trackComplete
}

func (t *tracker) fail() int {
	t.s.log.Info("live file changed", "path", t.rel, "etag", t.etag)
	t.publish(func(s *liveSnap) { s.status = trackChanged })
	return trackChanged
}

// completeFrom makes a tracker of a file that is already complete out of
// its cached manifest, without reading it.
func (t *tracker) completeFrom(m *manifest.Manifest) {
	final := *m
	final.ETag = t.etag
	t.publish(func(s *liveSnap) {
		s.status, s.size, s.blocks, s.hashes, s.weak, s.final = trackComplete, m.Size, m.Blocks, m.Hashes, m.Weak, &final
	})
}

// errRangeLive refuses a Range of a live file.
var errRangeLive = errors.New("a live file is followed to its end: ask without a Range, or with Last-Event-ID")

// resolveLive decides whether a ?follow=1 request is for a live file and
// returns its tracker if so, or nil for an ordinary request. wait lets a
// path that does not exist yet appear within FollowWait.
func (s *Server) resolveLive(ctx context.Context, rel, pin string, wait bool) (*tracker, error) {
	deadline := time.Now().Add(s.cfg.FollowWait)
	waiting := false
	defer func() {
		if waiting {
			s.leave()
		}
	}()
	for {
		t, found, err := s.lookLive(rel, pin)
		if found || err != nil || !wait {
			if !found && err == nil {
				err = errNotFound
			}
			return t, err
		}
		// A waiting request counts as a stream: MaxStreams bounds them too.
		if !waiting {
			if !s.enter() {
				return nil, errTooManyStreams
			}
			waiting = true
		}
		if err := s.awaitName(ctx, rel, deadline); err != nil {
			return nil, err
		}
	}
}

// lookLive looks for rel, or a temporary file of it, once: found is false
// if there is neither.
func (s *Server) lookLive(rel, pin string) (t *tracker, found bool, err error) {
	bs := s.cfg.BlockSize
	temp := ""
	info, err := s.dir.root.Stat(rel)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, true, errNotFound // a symlink out of the root, say: nothing to wait for
	}
	if err != nil {
		for _, pattern := range s.cfg.FollowTemp {
			tn := strings.ReplaceAll(pattern, "{}", rel)
			if validRel(tn) != nil {
				continue
			}
			if info, err = s.dir.root.Stat(tn); err == nil {
				temp = tn
				break
			}
		}
	}
	if err == nil && !info.Mode().IsRegular() {
		return nil, true, errNotFound // a folder, say: nothing to wait for
	}
	if err != nil {
		if pin != "" && isLiveETag(pin) {
			return nil, true, &pinError{}
		}
		return nil, false, nil
	}
	key := liveKeyOf(info, bs)
	etag := s.live.etag(key)
	livePin := pin != "" && isLiveETag(pin)
	if pin != "" && !livePin {
		return nil, true, nil // pinned to an ordinary version: an ordinary request
	}
	writing := temp != "" || s.writing(rel, info)
	switch {
	case livePin && !matchesETag(pin, etag):
		return nil, true, &pinError{etag: etag}
	case !livePin && !writing:
		return nil, true, nil // complete: an ordinary request
	}
	var done *manifest.Manifest
	if !writing { // pinned, and complete since
		done, _ = s.cache.Lookup(localInfo(rel, info).key(bs))
	}
	t, err = s.live.follow(s, key, rel, temp, done, writing && pin == "")
	if err != nil {
		return nil, true, err
	}
	return t, true, nil
}

// writing reports whether a file is being written: a process has it open
// for writing, or, where the kernel cannot tell, it was modified less than
// FollowIdle ago.
func (s *Server) writing(rel string, info os.FileInfo) bool {
	f, err := s.dir.root.Open(rel)
	if err != nil {
		return false
	}
	defer f.Close()
	if writer, known := hasWriter(f); known {
		return writer
	}
	return time.Since(info.ModTime()) < s.cfg.FollowIdle
}

// awaitName waits for something to appear in rel's folder, or for the
// next poll, until deadline (errNotFound then).
func (s *Server) awaitName(ctx context.Context, rel string, deadline time.Time) error {
	left := time.Until(deadline)
	if left <= 0 {
		return errNotFound
	}
	kick := make(chan struct{}, 1)
	sub, _ := s.live.w.watchDir(filepath.Dir(filepath.Join(s.dir.abs, rel)), func(int, string) {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	defer s.live.w.remove(sub)
	timer := time.NewTimer(min(left, livePoll))
	defer timer.Stop()
	select {
	case <-kick:
	case <-timer.C:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.done:
		return errTooManyStreams
	}
	return nil
}
