package chunker

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The endpoints of a Ferry server. Each file endpoint is followed by the
// file's escaped path below the served root.
const (
	// PathSSE streams a file as block events.
	PathSSE = "/sse/"
	// PathFiles serves a file's raw bytes, with Range and ETag.
	PathFiles = "/files/"
	// PathManifest serves a file's manifest: every block hash and the digests.
	PathManifest = "/manifest/"
	// PathList lists the files served, as JSON.
	PathList = "/api/files"
)

// FilePaths are the endpoints that take a file's path, in the order a URL
// is matched against them.
func FilePaths() []string { return []string{PathSSE, PathFiles, PathManifest} }

// Request headers and query parameters of /sse/. A query parameter stands
// in for its header where a client cannot set headers (a browser's
// EventSource); the header wins when both are given.
const (
	// HeaderLastEventID names the block the client holds; the stream starts
	// at the next one.
	HeaderLastEventID = "Last-Event-ID"
	// QueryLastEventID is HeaderLastEventID as a query parameter.
	QueryLastEventID = "lastEventId"
	// HeaderRange asks for the blocks overlapping one byte range.
	HeaderRange = "Range"
	// QueryRange is HeaderRange without its "bytes=" unit: range=a-b.
	QueryRange = "range"
	// QueryVersion pins the request to one etag (412 if the file changed);
	// If-Match does the same as a header.
	QueryVersion = "v"
	// QueryEncoding lists the codecs the client decodes, comma-separated.
	QueryEncoding = "encoding"
	// QueryFollow, "1", follows a file still being written: the stream (or
	// the manifest) covers the blocks complete so far and grows with the
	// file until it is complete.
	QueryFollow = "follow"
)

// ReservedQuery are the query parameters a client sets itself on every
// request; a URL a user gives keeps its other parameters (a signature, say).
func ReservedQuery() []string {
	return []string{QueryVersion, QueryLastEventID, QueryRange, QueryEncoding, QueryFollow}
}

// Field names of the block event's JSON payload, in the order the server
// writes them (see Encoder.FrameWith and ParseFrame).
const (
	FieldOffset   = "offset"
	FieldLength   = "length"
	FieldHash     = "hash"
	FieldEncoding = "encoding"
	FieldData     = "data"
)

// Event names of the stream at /sse/<path>.
const (
	// EventMeta opens every stream; its data is a Meta.
	EventMeta = "meta"
	// EventBlock carries one block; its id is the block's offset.
	EventBlock = "block"
	// EventEnd closes a complete stream; its data is an End.
	EventEnd = "end"
)

// Block encodings. Identity is the default; a client asks for the others
// with the query parameter encoding=s2,zstd,gzip. S2 is klauspost/compress's
// S2 block format (no stream framing): about four times as fast as zstd's
// fastest level and a little larger, the codec for fast links.
const (
	Identity = "identity"
	Zstd     = "zstd"
	Gzip     = "gzip"
	S2       = "s2"
)

// Meta is the payload of the meta event: the file version and the byte span
// [Start, End) whose blocks this response sends.
type Meta struct {
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	ETag      string `json:"etag"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	// Live marks the stream of a file still being written: Size and End are
	// what exists when the stream begins, and the stream goes past them
	// until the end event gives the final size.
	Live bool `json:"live,omitempty"`
}

// End is the payload of the end event: the digests of the whole file, which
// a client checks after it holds every block.
type End struct {
	Size    int64  `json:"size"`
	XXH3128 string `json:"xxh3_128"`
	SHA256  string `json:"sha256"`
}

// Negotiate picks the codecs of a stream from a client's comma-separated
// list: the strong one (zstd, else gzip, else Identity) and whether S2 may be
// used beside it. Unknown names are ignored.
func Negotiate(accept string) (strong string, s2 bool) {
	strong = Identity
	for name := range strings.SplitSeq(accept, ",") {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case Zstd:
			strong = Zstd
		case Gzip:
			if strong == Identity {
				strong = Gzip
			}
		case S2:
			s2 = true
		}
	}
	return strong, s2
}

// AppendEvent appends one SSE event with a JSON payload to dst. An empty id
// writes no id field (an empty "id:" would clear a browser's Last-Event-ID).
func AppendEvent(dst []byte, id, event string, payload any) []byte {
	data, err := json.Marshal(payload)
	if err != nil {
		panic("chunker: cannot marshal " + event + " payload: " + err.Error()) // only our own types reach here
	}
	if id != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, id...)
		dst = append(dst, '\n')
	}
	dst = append(dst, "event: "...)
	dst = append(dst, event...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, data...)
	return append(dst, "\n\n"...)
}

// FormatOffset writes a block offset as an event id.
func FormatOffset(off int64) string { return strconv.FormatInt(off, 10) }
