package server

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestManifestOfAFileBeingRewritten asks for the manifest of a 32 MiB file
// (no version pin) while another process rewrites it in place, over and
// over, for 1.5 s: many requests overlap a rewrite while the server hashes
// the file. Every answer must be a manifest (200) or "the file is
// changing, retry" (503 with Retry-After): not 412, which means a pinned
// version is gone and clients do not retry, and not 500.
func TestManifestOfAFileBeingRewritten(t *testing.T) {
	root := t.TempDir()
	data := make([]byte, 32<<20)
	path := filepath.Join(root, "f.bin")
	writeFile(t, root, "f.bin", data)
	_, ts := start(t, root, 16<<10)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // exits when stop is closed
		defer close(stopped)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data[0] = byte(i)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	codes := map[int]int{}
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); {
		resp, err := http.Get(ts.URL + "/manifest/f.bin")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	close(stop)
	<-stopped
	t.Logf("statuses of /manifest/ while the file was rewritten: %v", codes)
	for code, n := range codes {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers %d %s, want 200 or 503", n, code, http.StatusText(code))
		}
	}
}
