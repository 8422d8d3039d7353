package chunker_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/ferry-dev/ferry/chunker"
)

func Example() {
	file := strings.Repeat("ferry ", 400) // 2400 bytes
	c, _ := chunker.New(strings.NewReader(file), int64(len(file)), chunker.MinBlockSize)
	enc := chunker.NewEncoder(chunker.Identity)
	dec := chunker.NewDecoder()
	var out bytes.Buffer
	for i := range c.Count() {
		off, raw, _ := c.Block(i)
		event := enc.Frame(off, raw, chunker.Hash(raw))
		// A client takes the data field of the event...
		data := bytes.TrimSuffix(bytes.SplitN(event, []byte("data: "), 2)[1], []byte("\n\n"))
		frame, _ := chunker.ParseFrame(data)
		// ...and gets back the verified block.
		block, err := dec.Decode(frame)
		fmt.Println(frame.Offset, len(block), err)
		out.Write(block)
	}
	fmt.Println(out.String() == file)
	// Output:
	// 0 1024 <nil>
	// 1024 1024 <nil>
	// 2048 352 <nil>
	// true
}
