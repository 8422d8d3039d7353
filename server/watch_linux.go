package server

import (
	"errors"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Events a followed file's watch reports. A file's own watch gives
// fileChanged, closedWrite and gone; its folder's gives renamed (a name
// appeared by rename or creation).
const (
	fileChanged = 1 << iota
	closedWrite
	gone
	renamed
)

// watcher is the server's one inotify instance: every followed file and
// folder is a watch in it, so 100 followers of one file cost one watch and
// no goroutine each. Its reader goroutine exits when close is called.
type watcher struct {
	f *os.File // the inotify descriptor, non-blocking, in Go's poller

	mu   sync.Mutex
	subs map[int32]map[*watchSub]struct{}
}

// watchSub is one subscription: fn is called on the reader goroutine with
// the events of its watch and, for a folder, the name they concern. fn must
// not block.
type watchSub struct {
	wd int32
	fn func(ev int, name string)
}

// newWatcher starts an inotify instance, or returns nil where there is
// none to be had (too many instances): followers then poll.
func newWatcher() *watcher {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify"), subs: map[int32]map[*watchSub]struct{}{}}
	go w.read()
	return w
}

const (
	fileMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	dirMask  = unix.IN_MOVED_TO | unix.IN_CREATE
)

// watchFile subscribes fn to the events of the file at path (by inode:
// a rename does not move the watch off it).
func (w *watcher) watchFile(path string, fn func(int, string)) (*watchSub, error) {
	return w.add(path, fileMask, fn)
}

// watchDir subscribes fn to names appearing in the folder at path.
func (w *watcher) watchDir(path string, fn func(int, string)) (*watchSub, error) {
	return w.add(path, dirMask|unix.IN_ONLYDIR, fn)
}

func (w *watcher) add(path string, mask uint32, fn func(int, string)) (*watchSub, error) {
	if w == nil {
		return nil, errors.ErrUnsupported
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// The same inode gives the same descriptor; a file and a folder never
	// share one, so the mask is always the same for a descriptor.
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), path, mask)
	if err != nil {
		return nil, err
	}
	sub := &watchSub{wd: int32(wd), fn: fn}
	if w.subs[sub.wd] == nil {
		w.subs[sub.wd] = map[*watchSub]struct{}{}
	}
	w.subs[sub.wd][sub] = struct{}{}
	return sub, nil
}

// remove ends a subscription, and the watch with its last one.
func (w *watcher) remove(sub *watchSub) {
	if w == nil || sub == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.subs[sub.wd]
	delete(set, sub)
	if len(set) == 0 && set != nil {
		delete(w.subs, sub.wd)
		unix.InotifyRmWatch(int(w.f.Fd()), uint32(sub.wd))
	}
}

func (w *watcher) close() {
	if w != nil {
		w.f.Close()
	}
}

// read delivers events until the descriptor is closed.
func (w *watcher) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w.deliver(ev.Wd, ev.Mask, string(name))
		}
	}
}

func (w *watcher) deliver(wd int32, mask uint32, name string) {
	var ev int
	if mask&(unix.IN_MODIFY|unix.IN_ATTRIB) != 0 {
		ev |= fileChanged
	}
	if mask&unix.IN_CLOSE_WRITE != 0 {
		ev |= closedWrite
	}
	if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
		ev |= gone
	}
	if mask&(unix.IN_MOVED_TO|unix.IN_CREATE) != 0 {
		ev |= renamed
	}
	if mask&unix.IN_Q_OVERFLOW != 0 {
		ev = fileChanged | closedWrite | renamed // events were lost: everyone looks again
		wd = -1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, set := range w.subs {
		if wd != -1 && id != wd {
			continue
		}
		for sub := range set {
			sub.fn(ev, name)
		}
	}
}

// hasWriter reports whether any process has f's file open for writing, if
// the kernel can tell: a read lease is granted only on a file nobody
// writes (fcntl(2), F_SETLEASE). It is released at once.
func hasWriter(f *os.File) (writer, known bool) {
	sc, err := f.SyscallConn()
	if err != nil {
		return false, false
	}
	var lerr error
	sc.Control(func(fd uintptr) {
		if _, lerr = unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_RDLCK); lerr == nil {
			unix.FcntlInt(fd, unix.F_SETLEASE, unix.F_UNLCK)
		}
	})
	switch {
	case lerr == nil:
		return false, true
	case errors.Is(lerr, unix.EAGAIN), errors.Is(lerr, unix.EBUSY):
		return true, true
	}
	return false, false // no leases here (some file systems, another owner without CAP_LEASE)
}
