package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTimeToFirstBlock measures how long a 4 GiB file the server has
// never seen takes to deliver its first block event: it must not wait for
// the file's hashes. The file is sparse, so creating it costs nothing.
func BenchmarkTimeToFirstBlock(b *testing.B) {
	root := b.TempDir()
	f, err := os.Create(filepath.Join(root, "huge.bin"))
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(4 << 30)
	f.Close()
	s, err := New(Config{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ts := newBenchServer(b, s)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		// A new modification time each round: a version never seen before.
		mt := time.Unix(1_700_000_000+int64(i), 0)
		os.Chtimes(filepath.Join(root, "huge.bin"), mt, mt)
		start := time.Now()
		resp, err := http.Get(ts + "/sse/huge.bin")
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				b.Fatal(err)
			}
			if bytes.HasPrefix(line, []byte("event: block")) {
				break
			}
		}
		total += time.Since(start)
		resp.Body.Close()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/first-block")
}

// BenchmarkEmission compares the server's SSE emission rate with its
// /files/ rate on the same 256 MiB file, read by a client that only
// counts bytes. The ratio sse/files is reported as a metric.
func BenchmarkEmission(b *testing.B) {
	root := b.TempDir()
	data := make([]byte, 256<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	s, err := New(Config{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ts := newBenchServer(b, s)
	rate := func(u string) float64 { return readRate(b, u, len(data)) }
	rate(ts + "/sse/f.bin") // warm the page cache and the manifest cache
	var files, sse float64
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		files += rate(ts + "/files/f.bin")
		sse += rate(ts + "/sse/f.bin")
	}
	b.ReportMetric(files/float64(b.N)/1e6, "files-MB/s")
	b.ReportMetric(sse/float64(b.N)/1e6, "sse-MB/s")
	b.ReportMetric(sse/files, "sse/files")
}

func newBenchServer(b *testing.B, s *Server) string {
	hs := s.HTTPServer("127.0.0.1:0")
	ln, err := netListen()
	if err != nil {
		b.Fatal(err)
	}
	go hs.Serve(ln) // exits at Close below
	b.Cleanup(func() { hs.Close() })
	return fmt.Sprintf("http://%s", ln.Addr())
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// BenchmarkOrigin compares a stream of a 64 MiB file from an HTTP origin
// (a second Server's /files/ on loopback), with an empty and with a warm
// block cache, with the same stream from a local folder, in one run. The
// ratios origin/local are reported as metrics.
func BenchmarkOrigin(b *testing.B) {
	root := b.TempDir()
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	os.WriteFile(filepath.Join(root, "f.bin"), data, 0o644)
	local, err := New(Config{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	lts := newBenchServer(b, local)
	o, err := NewHTTPOrigin(lts+"/files/", nil)
	if err != nil {
		b.Fatal(err)
	}
	remote, err := New(Config{Origin: o})
	if err != nil {
		b.Fatal(err)
	}
	defer remote.Close()
	rts := newBenchServer(b, remote)
	rate := func(u string) float64 { return readRate(b, u, len(data)) }
	rate(lts + "/sse/f.bin") // warm the page cache
	var fromLocal, fromOrigin, cold, warm float64
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		fromLocal += rate(lts + "/sse/f.bin")
		fromOrigin += rate(rts + "/sse/f.bin")
		bc, err := NewBlockCache(b.TempDir(), 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		cached, err := New(Config{Origin: o, BlockCache: bc})
		if err != nil {
			b.Fatal(err)
		}
		cts := newBenchServer(b, cached)
		cold += rate(cts + "/sse/f.bin")
		bc.flush()
		warm += rate(cts + "/sse/f.bin")
		bc.Close()
	}
	b.ReportMetric(fromLocal/float64(b.N)/1e6, "local-MB/s")
	b.ReportMetric(fromOrigin/fromLocal, "origin/local")
	b.ReportMetric(cold/fromLocal, "cold-cache/local")
	b.ReportMetric(warm/fromLocal, "warm-cache/local")
}

// readRate GETs u, reads its body to the end and returns size bytes over
// the time that took.
func readRate(b *testing.B, u string, size int) float64 {
	start := time.Now()
	resp, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return float64(size) / time.Since(start).Seconds()
}
