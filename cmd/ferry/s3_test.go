package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/realparts"
	"github.com/ferry-dev/ferry/server/servertest"
)

// s3Store is a bucket of a real SeaweedFS for the origin tests.
type s3Store struct {
	w      *realparts.SeaweedFS
	bucket string
}

func startS3(t *testing.T) *s3Store {
	t.Helper()
	st := &s3Store{w: realparts.StartSeaweedFS(t), bucket: "artifacts"}
	if err := st.w.CreateBucket(context.Background(), st.bucket); err != nil {
		t.Fatalf("CreateBucket: %v\n%s", err, st.w.Output())
	}
	return st
}

func (st *s3Store) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := st.w.Put(context.Background(), st.bucket, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

// serveS3 starts ferry serve over the bucket's prefix build/ with the given
// credentials, and no AWS files of the user's: a HOME of its own.
func (st *s3Store) serveS3(t *testing.T, endpoint, key, secret string) *serveProc {
	t.Helper()
	env := []string{"HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_REGION=us-east-1", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	p, err := startServeWith(t, env, "--origin", "s3://"+st.bucket+"/build/", "--s3-endpoint", endpoint,
		"--addr", "127.0.0.1:0", "--block-size", "256KiB", "--retry", "50ms", "--log", "json", "--cache-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A file in a real S3-compatible store (SeaweedFS), served by ferry serve
// --origin s3://, arrives byte-identical through a proxy that cuts the
// connection four times; the listing shows it; a missing object is 404, a
// denied one 403, an unreachable store 503 with Retry-After; and no answer
// or log line shows the secret key.
func TestS3Origin(t *testing.T) {
	st := startS3(t)
	size := 256 << 20
	if testing.Short() {
		size = 32 << 20
	}
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{42}).Read(data)
	st.put(t, "build/app.bin", data)
	srv := st.serveS3(t, st.w.S3, st.w.AccessKey, st.w.SecretKey)

	cuts := []int64{int64(size) / 5, int64(size) / 4, int64(size) / 3, int64(size) / 2}
	var conns atomic.Int64
	proxy, err := servertest.NewProxy(srv.addr, func(int) servertest.Fault {
		if n := conns.Add(1) - 1; n < int64(len(cuts)) {
			return servertest.Fault{CutAt: cuts[n]}
		}
		return servertest.Fault{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	out := filepath.Join(t.TempDir(), "app.bin")
	start := time.Now()
	cmd := exec.Command(ferryBin, "get", "http://"+proxy.Addr+"/sse/app.bin", "-o", out, "--json", "--retries", "30", "--progress", "none")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry get: %v\n%s\nserver:\n%s", err, stderr.String(), srv.logs)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatalf("%s differs from the object (%d bytes, want %d)", out, len(got), len(data))
	}
	s := parseSummary(t, stdout.String())
	if s.Reconnects < len(cuts) {
		t.Errorf("%d reconnects for %d cuts", s.Reconnects, len(cuts))
	}
	t.Logf("%d MiB from SeaweedFS through %d cuts in %v: %d reconnects, %d bytes fetched",
		size>>20, len(cuts), time.Since(start).Round(time.Millisecond), s.Reconnects, s.BytesFetched)

	base := "http://" + srv.addr
	check := func(what, u string, want int) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %s %s, want %d", what, resp.Status, body, want)
		}
		if want == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", what)
		}
		if strings.Contains(string(body), "secret") {
			t.Errorf("%s: the answer shows a secret: %s", what, body)
		}
	}
	check("listing", base+"/api/files", http.StatusOK)
	resp, _ := http.Get(base + "/api/files")
	list, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(list), `"path":"app.bin"`) {
		t.Errorf("listing: %s", list)
	}
	check("missing object", base+"/sse/nope.bin", http.StatusNotFound)
	check("ready", base+"/readyz", http.StatusOK)

	denied := st.serveS3(t, st.w.S3, st.w.ReaderKey, st.w.ReaderSecret)
	check("denied object", "http://"+denied.addr+"/sse/app.bin", http.StatusForbidden)
	down := st.serveS3(t, "http://127.0.0.1:1", st.w.AccessKey, st.w.SecretKey)
	check("unreachable store", "http://"+down.addr+"/sse/app.bin", http.StatusServiceUnavailable)
	check("unreachable store, readyz", "http://"+down.addr+"/readyz", http.StatusServiceUnavailable)

	for _, p := range []*serveProc{srv, denied, down} {
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.logs.String(), "secret") {
			t.Errorf("a server's log shows a secret:\n%s", p.logs)
		}
	}
}

// An object replaced in the bucket mid-download is detected: ferry get
// restarts on the new version, keeping what still matches, and ends with
// the new bytes; with --strict it exits 7 instead.
func TestS3ObjectReplacedMidDownload(t *testing.T) {
	st := startS3(t)
	for _, strict := range []bool{false, true} {
		name := map[bool]string{false: "reuse", true: "strict"}[strict]
		t.Run(name, func(t *testing.T) {
			key := "build/" + name + ".bin"
			v1 := make([]byte, 24<<20)
			rand.NewChaCha8([32]byte{1}).Read(v1)
			v2 := bytes.Clone(v1)
			copy(v2[12<<20:], bytes.Repeat([]byte("v2"), 1<<20)) // a new version: 2 MiB in the middle differ
			st.put(t, key, v1)
			srv := st.serveS3(t, st.w.S3, st.w.AccessKey, st.w.SecretKey)
			proxy, err := servertest.NewProxy(srv.addr, func(int) servertest.Fault { return servertest.Fault{BytesPerSecond: 4 << 20} })
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			out := filepath.Join(t.TempDir(), "f.bin")
			args := []string{"http://" + proxy.Addr + "/sse/" + name + ".bin", "-o", out, "--retries", "10", "--idle-timeout", "10s"}
			if strict {
				args = append(args, "--strict")
			}
			get := startGetLines(t, args...)
			get.waitUntil(t, "progress past 10%", func() bool { return get.pct.Load() > 10 })
			st.put(t, key, v2) // the throttle stays: the server sees the change long before the end
			code := get.wait(t)
			if strict {
				if code != exitChanged {
					t.Fatalf("--strict: exit %d, want %d:\n%s", code, exitChanged, get.stderr())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, get.stderr())
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, v2) {
				t.Fatalf("%s is not the new version (%d bytes, equal to the old: %v)", out, len(got), bytes.Equal(got, v1))
			}
			if !strings.Contains(get.stderr(), "changed") {
				t.Errorf("ferry get did not say the file changed:\n%s", get.stderr())
			}
		})
	}
}
