//go:build !linux

package server

import "io/fs"

// ctime returns 0: elsewhere a file's version is its size and mtime only.
func ctime(fs.FileInfo) int64 { return 0 }

// inode returns 0: the cache keys versions by path, size and mtime only.
func inode(fs.FileInfo) uint64 { return 0 }

// device returns 0.
func device(fs.FileInfo) uint64 { return 0 }
