package sse_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ferry-dev/ferry/client/sse"
)

func Example() {
	stream := "retry: 2000\n" +
		": keep-alive\n" +
		"\n" +
		"id: 0\n" +
		"event: block\n" +
		"data: {\"offset\":0}\n" +
		"\n" +
		"data: first line\r\n" +
		"data: second line\r\n" +
		"\r\n" +
		"id: 262144\n" +
		"data: cut off"
	r := sse.NewReader(strings.NewReader(stream))
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("id=%q type=%q data=%q\n", ev.ID, ev.Type, ev.Data)
	}
	retry, _ := r.Retry()
	fmt.Printf("last event ID %q, retry %v\n", r.LastEventID(), retry)
	// Output:
	// id="0" type="block" data="{\"offset\":0}"
	// id="0" type="" data="first line\nsecond line"
	// last event ID "0", retry 2s
}
