//go:build unix

package client

import (
	"fmt"
	"path/filepath"
	"syscall"
)

// checkSpace fails with ErrDisk unless the destination's file system has
// room for need more bytes.
func checkSpace(out string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(out), &st); err != nil {
		return nil // unknown: let the writes tell
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need {
		return fmt.Errorf("%w: %s needs %d more bytes, %d free", ErrDisk, filepath.Dir(out), need, free)
	}
	return nil
}
