package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-dev/ferry/client"
	"github.com/ferry-dev/ferry/server"
)

// A Client downloads a file from a Ferry server to a local path, verifying
// every block and the whole file; a second Download of the same file finds
// it complete.
func ExampleClient() {
	root, _ := os.MkdirTemp("", "ferry-example-")
	defer os.RemoveAll(root)
	os.WriteFile(filepath.Join(root, "hello.txt"), []byte(strings.Repeat("hello, ferry\n", 10000)), 0o644)
	srv, err := server.New(server.Config{Root: root, BlockSize: 64 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	c := &client.Client{Retries: 3}
	defer c.Close()
	dst := filepath.Join(root, "downloaded.txt")
	for range 2 {
		res, err := c.Download(context.Background(), ts.URL+"/sse/hello.txt", dst, client.Options{SHA256: true})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d bytes, sha256 %s…, already complete: %v\n", res.Size, res.SHA256[:12], res.AlreadyComplete)
	}
	// Output:
	// 130000 bytes, sha256 7853ce29e0da…, already complete: false
	// 130000 bytes, sha256 7853ce29e0da…, already complete: true
}
