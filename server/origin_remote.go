package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// remoteObject is an open version of a file in a remote origin (HTTP or
// S3). Reads go through one ranged GET that is kept open while the reads
// are sequential, as a stream's are, and read ahead of the stream on a
// goroutine of its own, so that the origin's latency overlaps with
// encoding and sending: a ranged GET per block made a stream from nginx on
// loopback wait on each block in turn.
type remoteObject struct {
	info ObjectInfo
	// get opens the version from off to its end; it fails with
	// ErrOriginChanged once the origin holds another version.
	get func(ctx context.Context, off int64) (io.ReadCloser, error)
	// stat returns the origin's current info of the path.
	stat func(ctx context.Context) (ObjectInfo, error)

	mu      sync.Mutex
	body    *aheadReader // nil until the first read, or after a seek
	pos     int64        // offset of body's next byte
	changed bool
	checked time.Time // when Unchanged last asked the origin
}

// openRemote returns the version stat finds of a remote file, read with
// get.
func openRemote(ctx context.Context, stat func(context.Context) (ObjectInfo, error),
	get func(ctx context.Context, info ObjectInfo, off int64) (io.ReadCloser, error)) (Object, error) {
	info, err := stat(ctx)
	if err != nil {
		return nil, err
	}
	obj := &remoteObject{info: info, stat: stat, checked: time.Now()}
	obj.get = func(ctx context.Context, off int64) (io.ReadCloser, error) { return get(ctx, info, off) }
	return obj, nil
}

// readAhead is how many bytes a remote object's reader may hold ahead of
// its consumer.
const readAhead = 8 << 20

// ReadAt reads from the open GET when off is where it stands, else from a
// new one.
func (o *remoteObject) ReadAt(p []byte, off int64) (int, error) {
	if off >= o.info.Size {
		return 0, io.EOF
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed {
		return 0, ErrOriginChanged
	}
	if o.body == nil || o.pos != off {
		if o.body != nil {
			o.body.Close()
		}
		// The GET outlives the call that opened it: it is the object's,
		// and Close ends it.
		rc, err := o.get(context.Background(), off)
		if err != nil {
			o.body = nil
			if errors.Is(err, ErrOriginChanged) {
				o.changed = true
			}
			return 0, err
		}
		o.body, o.pos = newAheadReader(rc, readAhead), off
	}
	want := min(int64(len(p)), o.info.Size-off)
	n, err := io.ReadFull(o.body, p[:want])
	o.pos += int64(n)
	if err != nil {
		o.body.Close()
		o.body = nil
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			// Shorter than its size: replaced by a smaller version mid-read.
			o.changed = true
			return n, ErrOriginChanged
		}
		return n, err
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (o *remoteObject) Info() ObjectInfo { return o.info }

// checkEvery bounds how often Unchanged asks the origin. A read of another
// version fails on its own (If-Match); this catches a version replaced
// while one long GET streams the old one.
const checkEvery = time.Second

// Unchanged reports whether the origin still holds the version opened,
// asking it at most once per checkEvery.
func (o *remoteObject) Unchanged() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed {
		return false
	}
	if time.Since(o.checked) < checkEvery {
		return true
	}
	o.checked = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now, err := o.stat(ctx)
	if err != nil {
		return !errors.Is(err, errNotFound) // unreachable is not changed: the reads will tell
	}
	if now.Size != o.info.Size || now.Version != o.info.Version {
		o.changed = true
	}
	return !o.changed
}

func (o *remoteObject) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
	return nil
}

// aheadReader reads a body ahead of its consumer, up to a bound, on a
// goroutine of its own.
type aheadReader struct {
	body  io.ReadCloser
	full  chan []byte // chunks read, in order
	free  chan []byte // chunks consumed, for reuse
	cur   []byte      // the unread rest of the chunk being consumed
	head  []byte      // cur's whole chunk, returned to free when used up
	err   error       // set by the goroutine before it closes full
	close sync.Once
	done  chan struct{}
}

const aheadChunk = 256 << 10

func newAheadReader(body io.ReadCloser, ahead int) *aheadReader {
	n := max(ahead/aheadChunk, 2)
	r := &aheadReader{body: body, full: make(chan []byte, n), free: make(chan []byte, n+1), done: make(chan struct{})}
	go r.fill(n) // exits at the body's end or error, or when r is closed
	return r
}

func (r *aheadReader) fill(n int) {
	defer close(r.full)
	made := 0
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		default:
			if made < n+1 {
				buf, made = make([]byte, aheadChunk), made+1
			} else {
				select {
				case buf = <-r.free:
				case <-r.done:
					return
				}
			}
		}
		k, err := io.ReadFull(r.body, buf)
		if k > 0 {
			select {
			case r.full <- buf[:k]:
			case <-r.done:
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			r.err = err
			return
		}
	}
}

func (r *aheadReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.head != nil {
			r.free <- r.head[:cap(r.head)]
			r.head = nil
		}
		buf, ok := <-r.full
		if !ok {
			return 0, r.err
		}
		r.cur, r.head = buf, buf
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close ends the read-ahead and the body.
func (r *aheadReader) Close() error {
	r.close.Do(func() { close(r.done) })
	return r.body.Close()
}
