package manifest_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/manifest"
)

func ExampleBuild() {
	file := strings.Repeat("ferry ", 400) // 2400 bytes
	mtime := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	m, err := manifest.Build(context.Background(), strings.NewReader(file), "ferry.txt", int64(len(file)), mtime, 1024)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Blocks, len(m.Hashes), m.ETag)
	fmt.Println(m.SHA256)
	// Output:
	// 3 3 960-18ea8382f8940000-400
	// 23dd46d46ddef1f972415d4b8b5fa7cddf39d0efeadc7c46f12277af0e767ff0
}
