package sse

import "errors"

// ErrEventTooLarge reports the data of an event, or the value of a line,
// longer than the limit of a Reader.
var ErrEventTooLarge = errors.New("sse: event too large")
