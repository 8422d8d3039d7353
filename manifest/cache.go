package manifest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sync/singleflight"
)

// Key identifies one version of one file for the Cache.
type Key struct {
	Path      string
	Size      int64
	MTimeNano int64
	Inode     uint64
	// CTimeNano is the status change time where the platform has one (0
	// elsewhere): a rewrite in place that keeps size and mtime moves it.
	CTimeNano int64
	BlockSize int
	// Version is a remote origin's validator of the file (its ETag); empty
	// for a local file.
	Version string
}

func (k Key) String() string {
	s := fmt.Sprintf("%q size=%d mtime=%d inode=%d ctime=%d bs=%d", k.Path, k.Size, k.MTimeNano, k.Inode, k.CTimeNano, k.BlockSize)
	if k.Version != "" { // a local file's key, and so its file name on disk, stays as it was
		s += fmt.Sprintf(" version=%q", k.Version)
	}
	return s
}

// Cache holds manifests in memory, bounded to a number of entries, and in a
// directory on disk so that they outlive the process. Concurrent Gets of one
// key share one computation. The zero value is not usable; call NewCache.
type Cache struct {
	dir   string
	limit int
	group singleflight.Group

	mu  sync.Mutex
	mem map[Key]*Manifest
}

// NewCache returns a cache keeping at most limit manifests in memory
// (default 1024 when limit <= 0) and, unless dir is empty, a copy of each in
// dir, which is created if missing.
func NewCache(dir string, limit int) (*Cache, error) {
	if limit <= 0 {
		limit = 1024
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("manifest: cache directory: %w", err)
		}
	}
	return &Cache{dir: dir, limit: limit, mem: make(map[Key]*Manifest)}, nil
}

// Lookup returns the cached manifest for k without computing it.
func (c *Cache) Lookup(k Key) (*Manifest, bool) {
	c.mu.Lock()
	m, ok := c.mem[k]
	c.mu.Unlock()
	if ok {
		return m, true
	}
	if m := c.load(k); m != nil {
		c.remember(k, m)
		return m, true
	}
	return nil, false
}

// Put stores m as the manifest of k.
func (c *Cache) Put(k Key, m *Manifest) {
	c.remember(k, m)
	c.store(k, m)
}

// Get returns the manifest of k, calling build once if no caller has. The
// computation is not tied to ctx: it goes on for the next caller when this
// one gives up, and its result is cached.
func (c *Cache) Get(ctx context.Context, k Key, build func(context.Context) (*Manifest, error)) (*Manifest, error) {
	if m, ok := c.Lookup(k); ok {
		return m, nil
	}
	ch := c.group.DoChan(k.String(), func() (any, error) {
		if m, ok := c.Lookup(k); ok {
			return m, nil
		}
		m, err := build(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		c.Put(k, m)
		return m, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Manifest), nil
	}
}

func (c *Cache) remember(k Key, m *Manifest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mem[k]; !ok && len(c.mem) >= c.limit {
		for old := range c.mem { // evict an arbitrary entry; the disk copy stays
			delete(c.mem, old)
			break
		}
	}
	c.mem[k] = m
}

func (c *Cache) file(k Key) string {
	sum := sha256.Sum256([]byte(k.String()))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".json")
}

// load reads k's manifest from disk; a missing, unreadable or mismatched
// file is treated as absent.
func (c *Cache) load(k Key) *Manifest {
	if c.dir == "" {
		return nil
	}
	f, err := os.Open(c.file(k))
	if err != nil {
		return nil
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil || m.Path != k.Path || m.Size != k.Size || m.MTime.UnixNano() != k.MTimeNano || m.BlockSize != k.BlockSize {
		return nil
	}
	return m
}

// store writes m to disk atomically. The cache is an optimisation: a failed
// write leaves the manifest in memory only.
func (c *Cache) store(k Key, m *Manifest) {
	if c.dir == "" {
		return
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	if err := json.NewEncoder(tmp).Encode(m); err != nil {
		tmp.Close()
		return
	}
	if err := tmp.Close(); err != nil {
		return
	}
	os.Rename(tmp.Name(), c.file(k))
}
