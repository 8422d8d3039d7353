package main

import (
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/server"
)

// TestPrivateCA: a server whose certificate no system CA signed fails at
// once with a message that says so (no retries), --cacert trusts its CA,
// and --insecure accepts it with a warning.
func TestPrivateCA(t *testing.T) {
	data := randomData(61, 5*testBS)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	srv, err := server.New(server.Config{Root: root, BlockSize: testBS, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	url := ts.URL + "/sse/f.bin"
	dir := t.TempDir()

	code, _, stderr := ferry(t, "get", url, "-o", filepath.Join(dir, "a.bin"), "--progress", "line")
	if code != exitNetwork || !strings.Contains(stderr, "certificate is not trusted") || !strings.Contains(stderr, "--cacert") {
		t.Errorf("untrusted certificate: exit %d, want %d saying the certificate is not trusted and how to trust it:\n%s", code, exitNetwork, stderr)
	}
	if strings.Contains(stderr, "reconnecting") || strings.Contains(stderr, "retrying") {
		t.Errorf("a certificate error was retried:\n%s", stderr)
	}

	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	if code, _, stderr := ferry(t, "get", url, "-o", filepath.Join(dir, "b.bin"), "--cacert", ca); code != exitOK {
		t.Errorf("--cacert: exit %d\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "b.bin")); string(got) != string(data) {
		t.Error("--cacert: the file differs")
	}
	code, _, stderr = ferry(t, "get", url, "-o", filepath.Join(dir, "c.bin"), "--insecure")
	if code != exitOK || !strings.Contains(stderr, "warning: --insecure") {
		t.Errorf("--insecure: exit %d, want 0 with a warning:\n%s", code, stderr)
	}
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o644)
	if code, _, stderr := ferry(t, "get", url, "-o", filepath.Join(dir, "d.bin"), "--cacert", filepath.Join(dir, "junk.pem")); code != exitUsage {
		t.Errorf("--cacert of a file without certificates: exit %d, want %d\n%s", code, exitUsage, stderr)
	}
}
