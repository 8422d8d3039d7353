package client

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f's dirty pages to disk,
// without waiting for them. Done every few MiB, it spreads the disk writes
// over the download instead of leaving them all to the final fsync, which
// on the machine of docs/PERFORMANCE.md took 0.2–0.5 s for 512 MiB.
func startWriteback(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE) // advisory: errors show at fsync
	})
}
