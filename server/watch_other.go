//go:build !linux

package server

import (
	"errors"
	"os"
)

const (
	fileChanged = 1 << iota
	closedWrite
	gone
	renamed
)

// watcher is nil elsewhere: followers poll the file instead.
type watcher struct{}

type watchSub struct{}

func newWatcher() *watcher { return nil }

func (w *watcher) watchFile(string, func(int, string)) (*watchSub, error) {
	return nil, errors.ErrUnsupported
}

func (w *watcher) watchDir(string, func(int, string)) (*watchSub, error) {
	return nil, errors.ErrUnsupported
}

func (w *watcher) remove(*watchSub) {}
func (w *watcher) close()           {}

// hasWriter cannot tell elsewhere.
func hasWriter(*os.File) (writer, known bool) { return false, false }
