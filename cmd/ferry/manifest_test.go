package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/manifest"
	"github.com/ferry-dev/ferry/server"
	"github.com/ferry-dev/ferry/server/servertest"
)

// ferry manifest writes the manifest ferry serve would compute; a server
// over the folder uses it instead of hashing, unless the file changed
// since or the block size differs.
func TestSharedManifest(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f.bin")
	if err := os.WriteFile(p, bytes.Repeat([]byte("ferry "), 200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"manifest", "--block-size", "64KiB", p}, &stdout, &stderr); code != 0 {
		t.Fatalf("ferry manifest: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "f.bin.ferry-manifest: 19 blocks of 64KiB") {
		t.Errorf("ferry manifest printed %q", stdout.String())
	}
	f, err := os.Open(p + manifest.SharedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := manifest.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	fetch := func(bs int) (source string, body []byte) {
		t.Helper()
		var log servertest.SyncBuffer
		srv, err := server.New(server.Config{Root: root, BlockSize: bs, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ts := httptest.NewServer(srv)
		defer ts.Close()
		resp, err := http.Get(ts.URL + "/manifest/f.bin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/manifest/: %s %s", resp.Status, body)
		}
		for _, s := range []string{"shared", "hashed"} {
			if strings.Contains(log.String(), "source="+s) {
				return s, body
			}
		}
		t.Fatalf("the server logged no manifest source:\n%s", log.String())
		return "", nil
	}
	if src, body := fetch(64 << 10); src != "shared" || !strings.Contains(string(body), shared.SHA256) {
		t.Errorf("64KiB: source %s, want the shared manifest", src)
	}
	if src, _ := fetch(128 << 10); src != "hashed" {
		t.Errorf("128KiB: source %s, want hashed: the shared manifest is of 64KiB blocks", src)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(p, later, later)
	if src, _ := fetch(64 << 10); src != "hashed" {
		t.Errorf("after a touch: source %s, want hashed: the shared manifest is of another version", src)
	}
	// The listing shows the file, not its manifest.
	srv, _ := server.New(server.Config{Root: root})
	defer srv.Close()
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/api/files", nil))
	if strings.Contains(rec.Body.String(), manifest.SharedSuffix) || !strings.Contains(rec.Body.String(), "f.bin") {
		t.Errorf("listing: %s", rec.Body.String())
	}
}
