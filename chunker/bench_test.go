package chunker

import "testing"

func BenchmarkEncode(b *testing.B) {
	for _, data := range []struct {
		name string
		raw  []byte
	}{{"random", randomBytes(3, DefaultBlockSize)}, {"text", compressible(DefaultBlockSize)}} {
		for _, enc := range []string{Identity, Zstd, Gzip, S2} {
			b.Run(data.name+"/"+enc, func(b *testing.B) {
				e := NewEncoder(enc)
				b.SetBytes(int64(len(data.raw)))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					e.Frame(int64(i)*DefaultBlockSize, data.raw, Hash(data.raw))
				}
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, data := range []struct {
		name string
		raw  []byte
	}{{"random", randomBytes(3, DefaultBlockSize)}, {"text", compressible(DefaultBlockSize)}} {
		for _, enc := range []string{Identity, Zstd, Gzip, S2} {
			b.Run(data.name+"/"+enc, func(b *testing.B) {
				frame := NewEncoder(enc).Frame(0, data.raw, Hash(data.raw))
				payload := frame[len("id: 0\nevent: block\ndata: ") : len(frame)-2]
				d := NewDecoder()
				b.SetBytes(int64(len(data.raw)))
				b.ReportAllocs()
				for b.Loop() {
					f, err := ParseFrame(payload)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := d.Decode(f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
