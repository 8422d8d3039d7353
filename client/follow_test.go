package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server/servertest"
)

// Follow: a file being written is taken as it grows, through cuts, and
// finishes when its writer closes it; a file nobody writes downloads as
// usual; an existing destination of a live file is not replaced without
// Force; seeds do not go with it.
func TestFollow(t *testing.T) {
	data := randomData(51, 40*testBS+333)
	f := newFixture(t, map[string][]byte{"done.bin": data}, func(n int) servertest.Fault {
		if n < 2 {
			return servertest.Fault{CutAt: 5 * testBS}
		}
		return servertest.Fault{}
	})
	w, err := os.OpenFile(filepath.Join(f.root, "live.bin"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	half := int64(20 * testBS)
	w.Write(data[:half+100])

	dir := t.TempDir()
	out := filepath.Join(dir, "live.bin")
	j := testOptions(out)
	j.Follow = true
	reached := make(chan struct{})
	var once sync.Once
	j.OnProgress = func(p Progress) {
		if p.Done >= half {
			once.Do(func() { close(reached) })
		}
	}
	type outcome struct {
		res *Result
		err error
	}
	got := make(chan outcome, 1)
	go func() {
		res, err := j.run(context.Background(), f.url("live.bin"))
		got <- outcome{res, err}
	}()
	select {
	case <-reached:
	case o := <-got:
		t.Fatalf("the download ended while the file was being written: %v", o.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no progress to the first half within 30 s")
	}
	w.Write(data[half+100:])
	w.Close()
	o := <-got
	if o.err != nil {
		t.Fatal(o.err)
	}
	checkResult(t, out, data, o.res)
	if o.res.Reconnects < 2 || o.res.BytesFetched != int64(len(data)) {
		t.Errorf("reconnects %d, fetched %d: want the 2 cuts resumed and every block once", o.res.Reconnects, o.res.BytesFetched)
	}

	t.Run("a complete file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "done.bin")
		j := testOptions(out)
		j.Follow = true
		res, err := j.run(context.Background(), f.url("done.bin"))
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, out, data, res)
	})
	t.Run("an existing destination of a live file", func(t *testing.T) {
		w, _ := os.OpenFile(filepath.Join(f.root, "busy.bin"), os.O_WRONLY|os.O_CREATE, 0o644)
		defer w.Close()
		w.Write(data[:testBS])
		out := filepath.Join(t.TempDir(), "busy.bin")
		os.WriteFile(out, data[:testBS], 0o644)
		j := testOptions(out)
		j.Follow = true
		if _, err := j.run(context.Background(), f.url("busy.bin")); !errors.Is(err, ErrExists) {
			t.Fatalf("err %v, want ErrExists", err)
		}
	})
	t.Run("seeds", func(t *testing.T) {
		j := testOptions(filepath.Join(t.TempDir(), "x"))
		j.Follow, j.Seeds = true, []string{filepath.Join(f.root, "done.bin")}
		if _, err := j.run(context.Background(), f.url("done.bin")); !errors.Is(err, ErrUsage) {
			t.Fatalf("err %v, want ErrUsage", err)
		}
	})
}
