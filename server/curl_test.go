package server

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/server/servertest"
)

// TestCurlResumesFiles cuts curl's download of /files/ mid-way and resumes
// it with curl -C -, the way users resume plain HTTP downloads.
func TestCurlResumesFiles(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (.ci/run installs it)")
		}
		t.Skip("curl is not installed")
	}
	_, ts := start(t, "../testdata", 1024)
	want, _ := os.ReadFile("../testdata/multi-block.bin")
	for _, cut := range []int64{1000, 300000, 999000} {
		p, err := servertest.NewProxy(ts.Listener.Addr().String(), func(n int) servertest.Fault {
			if n == 0 {
				return servertest.Fault{CutAt: cut}
			}
			return servertest.Fault{}
		})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "f.bin")
		u := "http://" + p.Addr + "/files/multi-block.bin"
		if err := exec.Command(curl, "-sS", "-o", out, u).Run(); err == nil {
			t.Fatalf("cut %d: curl succeeded through a cut connection", cut)
		}
		part, _ := os.ReadFile(out)
		if len(part) == 0 || len(part) >= len(want) {
			t.Fatalf("cut %d: curl left %d bytes, want a partial file", cut, len(part))
		}
		if msg, err := exec.Command(curl, "-sS", "-C", "-", "-o", out, u).CombinedOutput(); err != nil {
			t.Fatalf("cut %d: curl -C -: %v: %s", cut, err, msg)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Fatalf("cut %d: resumed file differs (%d bytes, want %d)", cut, len(got), len(want))
		}
		p.Close()
	}
}
