package client

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	"github.com/ferry-dev/ferry/server"
)

// BenchmarkDownloadVsHTTP downloads the same file from the same server
// with Download and with a plain GET of /files/ written to disk, and
// reports Ferry's throughput as a ratio of the plain one ("ferry/http").
// Run: go test ./client -run x -bench DownloadVsHTTP -benchtime 3x
func BenchmarkDownloadVsHTTP(b *testing.B) {
	const size = 256 << 20
	random := randomData(99, size)
	var text bytes.Buffer
	for i := 0; text.Len() < size; i++ {
		text.WriteString("2026-11-23T10:00:00Z INFO ferry: path=/sse/dist/app.tar.gz remote=127.0.0.1 bytes=")
		text.WriteString(time.Duration(i * 7919).String())
		text.WriteString(" msg=\"stream complete\"\n")
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"random", random}, {"text", text.Bytes()[:size]}} {
		b.Run(c.name, func(b *testing.B) {
			root := b.TempDir()
			os.WriteFile(filepath.Join(root, "f.bin"), c.data, 0o644)
			srv, err := server.New(server.Config{Root: root, BlockSize: chunker.DefaultBlockSize, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			hs := srv.HTTPServer(ln.Addr().String())
			go hs.Serve(ln) // exits at Close
			defer hs.Close()
			base := "http://" + ln.Addr().String()
			dir := b.TempDir()
			plain := func() time.Duration {
				start := time.Now()
				resp, err := http.Get(base + "/files/f.bin")
				if err != nil {
					b.Fatal(err)
				}
				f, _ := os.Create(filepath.Join(dir, "plain.bin"))
				io.Copy(f, resp.Body)
				resp.Body.Close()
				f.Close()
				return time.Since(start)
			}
			ferry := func() time.Duration {
				out := filepath.Join(dir, "ferry.bin")
				os.Remove(out)
				start := time.Now()
				if _, err := Download(context.Background(), base+"/sse/f.bin", out, Options{}); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			plain()
			ferry() // warm the page cache and the server's manifest cache
			var tp, tf time.Duration
			b.SetBytes(size)
			for b.Loop() {
				tp += plain()
				tf += ferry()
			}
			b.ReportMetric(float64(size)*float64(b.N)/tp.Seconds()/1e6, "http-MB/s")
			b.ReportMetric(float64(size)*float64(b.N)/tf.Seconds()/1e6, "ferry-MB/s")
			b.ReportMetric(tp.Seconds()/tf.Seconds(), "ferry/http")
		})
	}
}
