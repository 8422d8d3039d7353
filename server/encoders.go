package server

import "github.com/ferry-dev/ferry/chunker"

// encoder takes an Encoder from the server's free list for the encoding,
// or builds one: a zstd encoder is costly to build, so they are kept (up to
// a bound) across streams rather than in a sync.Pool, which every garbage
// collection empties.
func (s *Server) encoder(strong string, s2 bool) *chunker.Encoder {
	select {
	case e := <-s.encoders[encoderKind{strong, s2}]:
		return e
	default:
		return chunker.NewEncoders(strong, s2)
	}
}

func (s *Server) putEncoder(strong string, s2 bool, e *chunker.Encoder) {
	select {
	case s.encoders[encoderKind{strong, s2}] <- e:
	default: // enough kept
	}
}

// encoderKind names a free list of encoders.
type encoderKind struct {
	strong string
	s2     bool
}
