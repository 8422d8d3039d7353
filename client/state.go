package client

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// state is what the state file beside a partial download records.
type state struct {
	URL       string `json:"url"`
	ETag      string `json:"etag"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
}

func partPath(out string) string  { return out + ".part" }
func statePath(out string) string { return out + ".ferry-state" }

// readState returns the saved state, or nil if there is none or it is unreadable.
func readState(out string) *state {
	b, err := os.ReadFile(statePath(out))
	if err != nil {
		return nil
	}
	var s state
	if json.Unmarshal(b, &s) != nil || s.ETag == "" || s.Size < 0 {
		return nil
	}
	return &s
}

// writeState replaces the state file atomically: temp file, fsync, rename.
func writeState(out string, s state) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".state-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	if err := os.Rename(tmp.Name(), statePath(out)); err != nil {
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	return nil
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
