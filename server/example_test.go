package server_test

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-dev/ferry/server"
)

// A server over a folder streams a file as SSE: a meta event, one block
// event per block with the block's offset as its id, and an end event with
// the whole file's digests. Resuming is a request with Last-Event-ID.
func Example() {
	root, err := os.MkdirTemp("", "ferry-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte(strings.Repeat("hello, ferry\n", 200)), 0o644); err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(server.Config{Root: root, BlockSize: 1024})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, lastID := range []string{"", "1024"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/sse/hello.txt", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID) // holds the block at 1024: resume after it
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		var events []string
		id := ""
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				if id != "" {
					v += "@" + id
				}
				events, id = append(events, v), ""
			}
		}
		resp.Body.Close()
		fmt.Printf("Last-Event-ID %q: %s %s\n", lastID, resp.Status, strings.Join(events, " "))
	}
	// Output:
	// Last-Event-ID "": 200 OK meta block@0 block@1024 block@2048 end
	// Last-Event-ID "1024": 200 OK meta block@2048 end
}
