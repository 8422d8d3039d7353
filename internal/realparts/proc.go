package realparts

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Written returns the bytes process pid has written so far, sockets
// included (wchar in /proc/PID/io; write_bytes counts only what reaches a
// disk): of replicas behind a balancer, the one serving a stream is the
// one whose count grows by the stream's bytes.
func Written(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "wchar:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/io: %q", pid, line)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no wchar in /proc/%d/io", pid)
}
