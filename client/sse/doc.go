// Package sse reads a Server-Sent Events stream, the text/event-stream format
// of the WHATWG HTML standard ("Parsing an event stream" and "Interpreting an
// event stream"), as a Ferry client receives it.
//
// A stream is a sequence of lines ended by CR, LF or CRLF; one UTF-8 byte
// order mark at its very start is dropped. Each line is one of
//
//	field: value     a field; one space after the colon is not part of the value
//	field            a field whose value is empty
//	: text           a comment, ignored
//	(blank)          the end of an event
//
// The fields are data (the value and an LF are appended to the event's data),
// event (the event type), id (the last event ID, ignored if it holds a NUL
// byte) and retry (the reconnection time in milliseconds, ignored unless it
// is all ASCII digits); other names are ignored. A blank line dispatches the
// event if it has data, with one trailing LF removed, and then clears the
// data and the type. The last event ID is not cleared: it carries over to
// every later event until an id field changes it, and an empty id field
// resets it to "". An event that the stream ends before its blank line is
// discarded, for instance
//
//	id: 7
//	event: block
//	data: {"offset":7,
//	data: "data":"…"}
//
//	data: cut off
//
// yields one event of type block, ID 7 and the two data lines joined by LF;
// the last line is dropped.
//
// Unlike a browser, the Reader passes bytes through as they are: it does not
// replace invalid UTF-8 with U+FFFD.
//
// The Reader is built for Ferry's block events, each one data line of
// several hundred KiB. It parses every line in place in its read buffer,
// finding line ends with bytes.IndexByte, and the data of an event of one
// data line is a slice of that buffer: no byte of it is copied after the
// source's Read. Reads start at 4 KiB and grow to 512 KiB while the source
// fills them; once two long data lines in a row are of about the same length,
// each Read is sized to end just after the next event, so that a stream of
// block events takes one Read per event when the source has the bytes, and
// leaves little of a line to move to the front of the buffer. The buffer holds about one such event and one
// Read; it grows for longer lines, up to the limit set by SetMaxEventSize.
package sse
