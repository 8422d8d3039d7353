package server

import (
	"testing"
	"time"
)

func TestCodecPolicy(t *testing.T) {
	const raw = 256 << 10
	tests := []struct {
		name        string
		ratio       float64       // compressed ÷ raw
		costPerByte time.Duration // compressing, per raw byte (in ns units)
		writeNs     float64       // writing, ns per wire byte
		wantMost    bool          // most blocks compressed?
	}{
		{"fast link, compressible", 0.2, 3, 0.2, false},
		{"slow link, compressible", 0.2, 3, 20, true},
		{"slow link, incompressible", 1.0, 3, 20, false},
		{"slow link, barely compressible", 0.95, 3, 20, false},
		{"medium link, half size", 0.5, 3, 8, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p codecPolicy
			tried := 0
			for range 160 {
				if p.try() {
					tried++
					p.compressed(raw, int(tt.ratio*raw), tt.costPerByte*raw)
				}
				p.wrote(raw*4/3, time.Duration(tt.writeNs*raw*4/3))
			}
			if most := tried > 80; most != tt.wantMost {
				t.Errorf("tried compression on %d of 160 blocks, want most=%v", tried, tt.wantMost)
			}
			if tried < 160/probeEvery {
				t.Errorf("tried compression on %d blocks, want at least every %dth as a probe", tried, probeEvery)
			}
		})
	}
}
