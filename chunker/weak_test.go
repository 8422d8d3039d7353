package chunker

import (
	"math/rand/v2"
	"testing"
)

// Rolling a window along the bytes gives, at every offset, the Weak of
// the window there.
func TestRollerMatchesWeak(t *testing.T) {
	data := make([]byte, 5000)
	rand.NewChaCha8([32]byte{7}).Read(data)
	for _, n := range []int{1, 2, 17, 1024, 4096} {
		r := NewRoller(data[:n])
		for off := 0; ; off++ {
			if got, want := r.Sum(), Weak(data[off:off+n]); got != want {
				t.Fatalf("window %d at %d: rolled %08x, Weak %08x", n, off, got, want)
			}
			if off+n >= len(data) {
				break
			}
			r.Roll(data[off], data[off+n])
		}
	}
	if Weak([]byte("abc")) == Weak([]byte("acb")) {
		t.Error("Weak does not see the order of the bytes")
	}
}

func BenchmarkRoll(b *testing.B) {
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{8}).Read(data)
	b.SetBytes(int64(len(data) - 4096))
	for b.Loop() {
		r := NewRoller(data[:4096])
		var x uint32
		for off := 0; off+4096 < len(data); off++ {
			r.Roll(data[off], data[off+4096])
			x ^= r.Sum()
		}
		_ = x
	}
}
