package link

import (
	"encoding/binary"
	"slices"
	"testing"
)

// packetMessage is a packet notice as the kernel sends it: the packet
// header attribute after another one, so that the parser has to skip.
func packetMessage(q *nfq, id uint32) []byte {
	hdr := binary.BigEndian.AppendUint32(nil, id)
	hdr = append(hdr, 0x08, 0x00, 3, 0) // hw_protocol, hook, padding
	m := q.message(nfqnlMsgPacket, 0, attr{nfqaPacketHdr, hdr})
	// Put a 6-byte attribute (padded to 8) in front of the header.
	other := []byte{10, 0, 9, 0, 1, 2, 3, 4, 5, 6, 0, 0}
	binary.NativeEndian.PutUint16(other, 10)
	out := slices.Concat(m[:nlmsgHdrLen+nfgenHdrLen], other, m[nlmsgHdrLen+nfgenHdrLen:])
	binary.NativeEndian.PutUint32(out, uint32(len(out)))
	return out
}

func TestPacketIDs(t *testing.T) {
	q := &nfq{queue: 7}
	read := slices.Concat(packetMessage(q, 1), packetMessage(q, 0xfffffffe), q.message(nfqnlMsgConfig, 0, attr{nfqaCfgCmd, []byte{1, 0, 0, 2}}), packetMessage(q, 42))
	if got, want := packetIDs(nil, read), []uint32{1, 0xfffffffe, 42}; !slices.Equal(got, want) {
		t.Errorf("packetIDs = %v, want %v", got, want)
	}
	if got := packetIDs(nil, read[:len(read)-3]); !slices.Equal(got, []uint32{1, 0xfffffffe}) {
		t.Errorf("packetIDs of a cut read = %v, want the whole messages' ids", got)
	}
}

// FuzzPacketIDs: whatever a read holds, packetIDs returns without a panic.
func FuzzPacketIDs(f *testing.F) {
	q := &nfq{queue: 7}
	f.Add(packetMessage(q, 5))
	f.Add(slices.Concat(packetMessage(q, 5), packetMessage(q, 6)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		packetIDs(nil, b)
	})
}
