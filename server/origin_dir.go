package server

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
)

// DirOrigin serves the regular files below a local folder. Symlinks are
// followed only while they stay inside it (os.Root).
type DirOrigin struct {
	root *os.Root
	dir  string
	abs  string // dir made absolute, for inotify
}

// NewDirOrigin opens dir.
func NewDirOrigin(dir string) (*DirOrigin, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		root.Close()
		return nil, err
	}
	return &DirOrigin{root: root, dir: dir, abs: abs}, nil
}

func (o *DirOrigin) String() string { return o.dir }

// Close releases the folder.
func (o *DirOrigin) Close() error { return o.root.Close() }

// Ready reports whether the folder can still be read.
func (o *DirOrigin) Ready(context.Context) error {
	if _, err := o.root.Stat("."); err != nil {
		return ErrOriginUnavailable
	}
	return nil
}

// Open opens a regular file. Anything else is ErrNotFound, without saying
// why: the caller must not learn about files outside.
func (o *DirOrigin) Open(_ context.Context, rel string) (Object, error) {
	f, err := o.root.Open(rel)
	if err != nil {
		return nil, errNotFound
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, errNotFound
	}
	return &dirObject{File: f, info: localInfo(rel, info)}, nil
}

// Walk lists every regular file that /sse/ would serve.
func (o *DirOrigin) Walk(ctx context.Context, fn func(ObjectInfo) error) error {
	fsys := o.root.FS()
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." || d.IsDir() {
			return nil // an unreadable folder is skipped, not fatal
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if validRel(p) != nil {
			return nil // a name /sse/ could not serve
		}
		info, err := fs.Stat(fsys, p) // follows symlinks, but only inside the root
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		return fn(localInfo(p, info))
	})
}

func localInfo(rel string, info fs.FileInfo) ObjectInfo {
	return ObjectInfo{Path: rel, Size: info.Size(), ModTime: info.ModTime(), inode: inode(info), ctime: ctime(info)}
}

// dirObject is an open local file.
type dirObject struct {
	*os.File
	info ObjectInfo
}

func (d *dirObject) Info() ObjectInfo { return d.info }

// localFile returns the open file behind a local Object, or nil.
func localFile(o Object) *os.File {
	if ob, ok := o.(observedObject); ok {
		o = ob.Object
	}
	if d, ok := o.(*dirObject); ok {
		return d.File
	}
	return nil
}

// Unchanged reports whether the open file still has the size, modification
// time and status change time it had when it was opened. The last one
// catches a rewrite in place that put the old mtime back (cp -p, a build
// with its mtime clamped): a write always moves it, and utimes cannot.
func (d *dirObject) Unchanged() bool {
	now, err := d.Stat()
	return err == nil && now.Size() == d.info.Size && now.ModTime().Equal(d.info.ModTime) && ctime(now) == d.info.ctime
}
