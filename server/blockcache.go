package server

import (
	"container/list"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
)

// BlockCache keeps blocks of remote files on local disk, bounded in bytes,
// evicting the least recently used first. An entry is named by the file's
// path, version and block size and the block's index, so a block of one
// version is never served for another; its contents end in their xxh3-64,
// checked on every read, so a damaged entry is a miss, not a bad block.
// Use order survives restarts through the entries' mtimes.
type BlockCache struct {
	dir string
	max int64

	// writes queue blocks for the writer goroutine, so that a stream does
	// not wait on each of the cache's file system calls; a stream faster
	// than the disk waits when the queue is full (64 blocks, 16 MiB at the
	// default block size). Dropping those blocks instead left a file cached
	// in patches, and a stream over patches opens a GET of the origin at
	// every gap: a "warm" stream ran at 0.45-0.64 of a local one instead of
	// 1.1. sending, read-held by put, keeps Close from closing writes
	// under a sender.
	writes  chan cacheWrite
	closed  chan struct{}
	sending sync.RWMutex
	done    bool     // set by Close, under sending
	dirs    sync.Map // the subfolders made so far

	mu                     sync.Mutex
	size                   int64
	order                  *list.List               // front: most recently used; values are *cacheEntry
	byKey                  map[string]*list.Element // by file name
	hits, misses, hitBytes int64
}

type cacheWrite struct {
	name string
	b    []byte        // the block and its xxh3-64
	done chan struct{} // or a flush, closed when the writes before it are done
}

type cacheEntry struct {
	name    string
	size    int64
	touched time.Time // its mtime, as far as this process set it
}

// NewBlockCache opens (or creates) a block cache in dir holding at most
// max bytes, and indexes the entries a previous process left there.
func NewBlockCache(dir string, max int64) (*BlockCache, error) {
	if max <= 0 {
		return nil, fmt.Errorf("block cache: size bound %d must be positive", max)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &BlockCache{dir: dir, max: max, order: list.New(), byKey: map[string]*list.Element{},
		writes: make(chan cacheWrite, 64), closed: make(chan struct{})}
	type found struct {
		name  string
		size  int64
		mtime time.Time
	}
	var all []found
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			os.Remove(p) // a write a crash cut short
			return nil
		}
		if info, err := d.Info(); err == nil {
			all = append(all, found{d.Name(), info.Size(), info.ModTime()})
		}
		return nil
	})
	slices.SortFunc(all, func(a, b found) int { return b.mtime.Compare(a.mtime) })
	for _, f := range all {
		c.byKey[f.name] = c.order.PushBack(&cacheEntry{f.name, f.size, f.mtime})
		c.size += f.size
	}
	c.mu.Lock()
	c.evict()
	c.mu.Unlock()
	go c.writer() // exits at Close
	return c, nil
}

// Close stops the writer after the blocks queued so far.
func (c *BlockCache) Close() error {
	c.sending.Lock()
	if !c.done {
		c.done = true
		close(c.writes)
	}
	c.sending.Unlock()
	<-c.closed
	return nil
}

func (c *BlockCache) writer() {
	defer close(c.closed)
	for w := range c.writes {
		if w.done != nil {
			close(w.done)
			continue
		}
		c.write(w.name, w.b)
	}
}

// put queues a copy of block p for the cache, waiting while the queue is
// full.
func (c *BlockCache) put(name string, p []byte) {
	b := make([]byte, len(p), len(p)+8)
	copy(b, p)
	b = binary.LittleEndian.AppendUint64(b, xxh3.Hash(p))
	c.sending.RLock()
	defer c.sending.RUnlock()
	if !c.done {
		c.writes <- cacheWrite{name: name, b: b}
	}
}

// flush waits until the blocks queued so far are written.
func (c *BlockCache) flush() {
	done := make(chan struct{})
	c.writes <- cacheWrite{done: done}
	<-done
}

// blockName names block i of a version of a file.
func blockName(info ObjectInfo, blockSize int, i int64) string {
	h := xxh3.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", info.Path, info.Version, info.Size, blockSize)
	sum := h.Sum128().Bytes()
	return hex.EncodeToString(sum[:]) + "-" + fmt.Sprint(i)
}

func (c *BlockCache) path(name string) string { return filepath.Join(c.dir, name[:2], name) }

// get reads the entry into p, which must be the block's length, and
// reports whether it was there and intact. It reads straight into p: a
// buffer per block made a warm cache slower than its origin.
func (c *BlockCache) get(name string, p []byte) bool {
	c.mu.Lock()
	e, found := c.byKey[name]
	if !found || e.Value.(*cacheEntry).size != int64(len(p))+8 {
		c.misses++
		c.mu.Unlock()
		return false
	}
	c.mu.Unlock()
	ok := false
	if f, err := os.Open(c.path(name)); err == nil {
		var sum [8]byte
		n, err := f.ReadAt(p, 0)
		m, err2 := f.ReadAt(sum[:], int64(len(p)))
		f.Close()
		ok = err == nil && n == len(p) && (err2 == nil || err2 == io.EOF) && m == 8 && binary.LittleEndian.Uint64(sum[:]) == xxh3.Hash(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.misses++
		c.drop(name) // damaged: never again
		return false
	}
	c.hits++
	c.hitBytes += int64(len(p))
	if e, found := c.byKey[name]; found {
		c.order.MoveToFront(e)
		// The use order, for the next process: its mtime, at most once a
		// minute per entry.
		if ce := e.Value.(*cacheEntry); time.Since(ce.touched) > time.Minute {
			ce.touched = time.Now()
			os.Chtimes(c.path(name), ce.touched, ce.touched)
		}
	}
	return true
}

// write stores a block and its hash; a failed write only costs the entry.
func (c *BlockCache) write(name string, b []byte) {
	dir := filepath.Dir(c.path(name))
	if _, made := c.dirs.Load(dir); !made {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return
		}
		c.dirs.Store(dir, true)
	}
	// Written in place, without a temporary file and a rename (which cost
	// a stream from a cold cache half its speed on ext4): an entry a crash
	// cut short fails its hash, or its size, on the next read.
	if err := os.WriteFile(c.path(name), b, 0o644); err != nil {
		os.Remove(c.path(name))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, found := c.byKey[name]; found {
		c.size -= e.Value.(*cacheEntry).size
		c.order.Remove(e)
	}
	c.byKey[name] = c.order.PushFront(&cacheEntry{name, int64(len(b)), time.Now()})
	c.size += int64(len(b))
	c.evict()
}

// evict removes the least recently used entries until the cache is within
// its bound. Called with mu held.
func (c *BlockCache) evict() {
	for c.size > c.max {
		e := c.order.Back()
		if e == nil {
			return
		}
		c.drop(e.Value.(*cacheEntry).name)
	}
}

// drop removes an entry. Called with mu held.
func (c *BlockCache) drop(name string) {
	if e, found := c.byKey[name]; found {
		c.size -= e.Value.(*cacheEntry).size
		c.order.Remove(e)
		delete(c.byKey, name)
	}
	os.Remove(c.path(name))
}

// Stats returns the hits, misses, bytes served from the cache and bytes
// held.
func (c *BlockCache) Stats() (hits, misses, hitBytes, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, c.hitBytes, c.size
}

// cachedObject reads whole blocks of a remote object through a BlockCache.
type cachedObject struct {
	Object
	cache     *BlockCache
	blockSize int
}

func (o cachedObject) ReadAt(p []byte, off int64) (int, error) {
	info := o.Info()
	bs := int64(o.blockSize)
	whole := off%bs == 0 && int64(len(p)) == min(bs, info.Size-off)
	if !whole || len(p) == 0 {
		return o.Object.ReadAt(p, off)
	}
	name := blockName(info, o.blockSize, off/bs)
	if o.cache.get(name, p) {
		return len(p), nil
	}
	n, err := o.Object.ReadAt(p, off)
	if n == len(p) && (err == nil || off+int64(n) == info.Size) {
		o.cache.put(name, p[:n])
	}
	return n, err
}
