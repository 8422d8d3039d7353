package server

import (
	"container/list"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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

	mu    sync.Mutex
	size  int64
	order *list.List               // front: most recently used; values are *cacheEntry
	byKey map[string]*list.Element // by file name
	hits, misses, hitBytes int64
}

type cacheEntry struct {
	name string
	size int64
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
	c := &BlockCache{dir: dir, max: max, order: list.New(), byKey: map[string]*list.Element{}}
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
		c.byKey[f.name] = c.order.PushBack(&cacheEntry{f.name, f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evict()
	c.mu.Unlock()
	return c, nil
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
// reports whether it was there and intact.
func (c *BlockCache) get(name string, p []byte) bool {
	b, err := os.ReadFile(c.path(name))
	ok := err == nil && len(b) == len(p)+8 && binary.LittleEndian.Uint64(b[len(p):]) == xxh3.Hash(b[:len(p)])
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.misses++
		if err == nil {
			c.drop(name) // damaged, or of another length: never again
		}
		return false
	}
	copy(p, b)
	c.hits++
	c.hitBytes += int64(len(p))
	if e, found := c.byKey[name]; found {
		c.order.MoveToFront(e)
	}
	now := time.Now()
	os.Chtimes(c.path(name), now, now) // the use order, for the next process
	return true
}

// put stores a block; a failed write only costs the entry.
func (c *BlockCache) put(name string, p []byte) {
	dir := filepath.Dir(c.path(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	b := binary.LittleEndian.AppendUint64(slices.Clip(p), xxh3.Hash(p))
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err != nil || cerr != nil || os.Rename(tmp.Name(), c.path(name)) != nil {
		os.Remove(tmp.Name())
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, found := c.byKey[name]; found {
		c.size -= e.Value.(*cacheEntry).size
		c.order.Remove(e)
	}
	c.byKey[name] = c.order.PushFront(&cacheEntry{name, int64(len(b))})
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
