package chunker

// Weak is the rolling checksum of a block (rsync's, in 32 bits): a, the
// sum of its bytes, and b, the sum of each byte times its distance from
// the block's end, both mod 2^16, as b<<16 | a. Unlike xxh3 it rolls: a
// Roller moves it one byte along a file in constant time, so a client can
// find a block of a new version at any offset of an old copy (a seed)
// and then confirm it with the block's xxh3-64.
func Weak(p []byte) uint32 {
	r := Roller{n: uint32(len(p))}
	r.add(p)
	return r.Sum()
}

// Roller is the Weak checksum of a window of fixed length sliding over a
// stream of bytes.
type Roller struct {
	a, b uint32
	n    uint32
}

// NewRoller starts a Roller on the window p.
func NewRoller(p []byte) *Roller {
	r := &Roller{n: uint32(len(p))}
	r.add(p)
	return r
}

// add sums the window p into r.
func (r *Roller) add(p []byte) {
	for i, c := range p {
		r.a += uint32(c)
		r.b += (r.n - uint32(i)) * uint32(c)
	}
}

// Roll moves the window one byte: out leaves it at the front, in enters
// at the back.
func (r *Roller) Roll(out, in byte) {
	r.a += uint32(in) - uint32(out)
	r.b += r.a - r.n*uint32(out)
}

// Sum returns the Weak checksum of the window.
func (r *Roller) Sum() uint32 { return (r.b&0xffff)<<16 | r.a&0xffff }
