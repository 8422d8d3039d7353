package realparts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// SeaweedFS is a running "weed server" with its S3 gateway: an
// S3-compatible object store on 127.0.0.1.
type SeaweedFS struct {
	// S3 is the gateway's endpoint, http://127.0.0.1:PORT.
	S3 string
	// AccessKey and SecretKey are an identity allowed everything;
	// ReaderKey and ReaderSecret one allowed to read only the bucket
	// named "other", so denied every other.
	AccessKey, SecretKey    string
	ReaderKey, ReaderSecret string
	cmd                     *exec.Cmd
	out                     *weedLog
	done                    chan struct{}
}

// WeedPath returns the weed binary: $FERRY_WEED, or what .ci/weed.sh
// built and cached.
func WeedPath() (string, error) {
	if p := os.Getenv("FERRY_WEED"); p != "" {
		return p, nil
	}
	cache := os.Getenv("FERRY_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "ferry")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "weed-v*"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return m, nil
		}
	}
	return "", fmt.Errorf("realparts: no weed binary in %s", cache)
}

// Weed returns the weed binary, or skips t when there is none (fails it
// under CI=true, where .ci/run builds it).
func Weed(t testing.TB) string {
	t.Helper()
	return need(t, WeedPath, "SeaweedFS not built: run bash .ci/weed.sh (about 8 minutes; it caches the binary), or set FERRY_WEED")
}

// freePortPair returns a port p such that p and p+10000 (where weed puts
// a server's gRPC port) are both free on 127.0.0.1.
func freePortPair() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+10000 > 65535 {
			continue
		}
		if ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000)); err == nil {
			ln2.Close()
			return p, nil
		}
	}
	return 0, errors.New("realparts: no free pair of ports")
}

// StartSeaweedFS runs SeaweedFS (see LaunchSeaweedFS) in a temporary
// folder and stops it when t ends; it skips t without weed.
func StartSeaweedFS(t testing.TB) *SeaweedFS {
	t.Helper()
	w, err := LaunchSeaweedFS(Weed(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// LaunchSeaweedFS runs a master, a volume server, a filer and the S3
// gateway in one "weed server" process over dir, with two identities, and
// returns once the gateway answers. Stop ends it.
func LaunchSeaweedFS(bin, dir string) (*SeaweedFS, error) {
	w := &SeaweedFS{AccessKey: "ferry-test-key", SecretKey: "ferry-test-secret-do-not-log",
		ReaderKey: "ferry-reader-key", ReaderSecret: "ferry-reader-secret-do-not-log",
		out: new(weedLog), done: make(chan struct{})}
	conf := fmt.Sprintf(`{"identities":[
 {"name":"admin","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]},
 {"name":"reader","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Read:other","List:other"]}]}`,
		w.AccessKey, w.SecretKey, w.ReaderKey, w.ReaderSecret)
	confPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	ports := make([]int, 4)
	for i := range ports {
		var err error
		if ports[i], err = freePortPair(); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	w.cmd = exec.Command(bin, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+data,
		"-master.port="+strconv.Itoa(ports[0]), "-volume.port="+strconv.Itoa(ports[1]),
		"-filer", "-filer.port="+strconv.Itoa(ports[2]),
		"-s3", "-s3.port="+strconv.Itoa(ports[3]), "-s3.config="+confPath,
		"-master.volumeSizeLimitMB=1024", "-volume.max=8")
	w.cmd.Dir = dir
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { w.cmd.Wait(); close(w.done) }() // exits with weed
	w.S3 = "http://127.0.0.1:" + strconv.Itoa(ports[3])
	deadline := time.Now().Add(90 * time.Second)
	for {
		// Any HTTP answer (403 to an unsigned request) means the gateway
		// is up; the filer behind it may still be starting, which
		// CreateBucket retries through.
		resp, err := http.Get(w.S3 + "/")
		if err == nil {
			resp.Body.Close()
			return w, nil
		}
		select {
		case <-w.done:
			return nil, fmt.Errorf("weed server exited:\n%s", w.out.tail())
		case <-time.After(100 * time.Millisecond): // polling a condition, with a deadline
		}
		if time.Now().After(deadline) {
			w.Stop()
			return nil, fmt.Errorf("weed's S3 gateway did not answer within 90s:\n%s", w.out.tail())
		}
	}
}

// Client returns an S3 client of the store with the identity allowed
// everything.
func (w *SeaweedFS) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(w.S3), UsePathStyle: true, Region: "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(w.AccessKey, w.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates a bucket, retrying for up to a minute while the
// store's filer is still starting.
func (w *SeaweedFS) CreateBucket(ctx context.Context, bucket string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := w.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond) // polling a condition, with a deadline
	}
}

// Put stores size bytes of r as bucket/key.
func (w *SeaweedFS) Put(ctx context.Context, bucket, key string, r io.Reader, size int64) error {
	_, err := w.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: r, ContentLength: aws.Int64(size)})
	return err
}

// Stop ends weed and waits for it.
func (w *SeaweedFS) Stop() {
	select {
	case <-w.done:
		return
	default:
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		w.cmd.Process.Kill()
		<-w.done
	}
}

// Output returns the end of what weed logged.
func (w *SeaweedFS) Output() string { return w.out.tail() }

// weedLog keeps what weed writes; tail returns its last 4 KiB.
type weedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *weedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *weedLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	return string(b[max(0, len(b)-4096):])
}
