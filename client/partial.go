package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// partial owns the files of a download in progress beside its destination
// dst: dst.part, which holds the blocks, and dst.ferry-state, which records
// the version they belong to. Only the download's coordinator calls its
// methods, except WriteAt, ReadAt and writeback, which the sink and the
// checks call while the coordinator waits for them.
type partial struct {
	dst string
	f   *os.File // dst.part, once opened
}

// state is what the state file records.
type state struct {
	URL       string `json:"url"`
	ETag      string `json:"etag"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
}

func newPartial(dst string) *partial { return &partial{dst: dst} }

// PartialPath returns where a download to dst keeps its blocks until it is
// complete: the file to mention when a download is interrupted.
func PartialPath(dst string) string { return dst + ".part" }

func statePath(dst string) string { return dst + ".ferry-state" }

func (p *partial) path() string { return PartialPath(p.dst) }

// exists reports whether a partial file with data in it is there.
func (p *partial) exists() bool {
	info, err := os.Stat(p.path())
	return err == nil && info.Size() > 0
}

// open opens (creating) the partial file and sets its size.
func (p *partial) open(size int64) error {
	if p.f == nil {
		f, err := os.OpenFile(p.path(), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return diskError(err)
		}
		p.f = f
	}
	if info, err := p.f.Stat(); err != nil || info.Size() != size {
		if err := p.f.Truncate(size); err != nil {
			return diskError(err)
		}
	}
	return nil
}

// openGrowing opens (creating) the partial file of a follow, which grows
// as blocks come, and cuts it to size if size ≥ 0. It returns its size.
func (p *partial) openGrowing(size int64) (int64, error) {
	if p.f == nil {
		f, err := os.OpenFile(p.path(), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return 0, diskError(err)
		}
		p.f = f
	}
	if size >= 0 {
		if err := p.f.Truncate(size); err != nil {
			return 0, diskError(err)
		}
		return size, nil
	}
	info, err := p.f.Stat()
	if err != nil {
		return 0, diskError(err)
	}
	return info.Size(), nil
}

func (p *partial) WriteAt(b []byte, off int64) (int, error) { return p.f.WriteAt(b, off) }
func (p *partial) ReadAt(b []byte, off int64) (int, error)  { return p.f.ReadAt(b, off) }

// writeback starts writing the dirty pages to disk without waiting.
func (p *partial) writeback() { startWriteback(p.f) }

// checkSpace fails with ErrDisk unless the destination's file system has
// room for need more bytes.
func (p *partial) checkSpace(need int64) error { return checkSpace(p.dst, need) }

// loadState returns the saved state, or nil if there is none or it is
// unreadable.
func (p *partial) loadState() *state {
	b, err := os.ReadFile(statePath(p.dst))
	if err != nil {
		return nil
	}
	var s state
	if json.Unmarshal(b, &s) != nil || s.ETag == "" || s.Size < 0 {
		return nil
	}
	return &s
}

// saveState replaces the state file atomically: temp file, fsync, rename.
func (p *partial) saveState(s state) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.dst), filepath.Base(p.dst)+".state-*")
	if err != nil {
		return diskError(err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), statePath(p.dst))
	}
	if err != nil {
		return diskError(err)
	}
	return nil
}

// commit makes the partial file durable and moves it into place: fsync,
// rename over dst (which must not have appeared meanwhile unless force),
// removal of the state file, fsync of the directory.
func (p *partial) commit(force bool) error {
	err := p.f.Sync()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f = nil
	if err != nil {
		return diskError(err)
	}
	if _, err := os.Stat(p.dst); err == nil && !force {
		return fmt.Errorf("%w: %s appeared during the download", ErrExists, p.dst)
	}
	if err := os.Rename(p.path(), p.dst); err != nil {
		return diskError(err)
	}
	os.Remove(statePath(p.dst))
	if err := syncDir(filepath.Dir(p.dst)); err != nil {
		return diskError(err)
	}
	return nil
}

// close closes the partial file, if open, keeping it for a resume.
func (p *partial) close() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func diskError(err error) error {
	if errors.Is(err, ErrDisk) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDisk, err)
}
