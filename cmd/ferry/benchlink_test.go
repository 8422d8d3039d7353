package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/link"
)

// TestBenchLink runs ferry bench --link dsl on a small file: the link is
// really shaped (the round trip it measures is the profile's 30 ms, plain
// HTTP's rate about its 50 Mbit/s) and every case has a row. It needs
// root, ip, tc, iptables and network namespaces; without them it skips
// (and fails under CI=true where the tools, not the privilege, are
// missing).
func TestBenchLink(t *testing.T) {
	if err := link.Check(); err != nil {
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("%v (.ci/run installs iproute2)", err)
		}
		t.Skip(err)
	}
	if _, err := exec.LookPath("iptables"); err != nil { // the dsl link's delay
		if os.Getenv("CI") == "true" {
			t.Fatal("no iptables (.ci/run installs it)")
		}
		t.Skip("the delay of a link needs iptables (apt-get install iptables)")
	}
	if out, err := exec.Command("ip", "netns", "add", "ferry-probe").CombinedOutput(); err != nil {
		t.Skipf("network namespaces are not allowed here: %s", out)
	}
	exec.Command("ip", "netns", "del", "ferry-probe").Run()

	code, stdout, stderr := ferry(t, "bench", "--link", "dsl", "--size", "2MiB", "--block-size", "64KiB", "--repeat", "1", "--dir", t.TempDir())
	if code != 0 {
		t.Fatalf("ferry bench --link dsl: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`measured: ([0-9.]+m?s) round trip`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no measured round trip in:\n%s", stdout)
	}
	rtt, err := time.ParseDuration(m[1])
	if err != nil || rtt < 28*time.Millisecond || rtt > 150*time.Millisecond {
		t.Errorf("measured round trip %s, want about the profile's 30ms", m[1])
	}
	for _, name := range []string{"random/http", "random/ferry/identity/p1", "random/ferry/auto/p4", "text/ferry/auto/p1"} {
		if !strings.Contains(stdout, "\n"+name+" ") {
			t.Errorf("no row %q:\n%s", name, stdout)
		}
	}
	row := regexp.MustCompile(`\nrandom/http +[0-9.]+ +[0-9.]+ +[0-9.]+ +([0-9.]+) `).FindStringSubmatch(stdout)
	if row == nil {
		t.Fatalf("no random/http row with a rate:\n%s", stdout)
	}
	// 50 Mbit/s is 5.96 MiB/s; a 2 MiB file also pays the round trips.
	if r, _ := strconv.ParseFloat(row[1], 64); r < 1.5 || r > 6.5 {
		t.Errorf("plain HTTP over the dsl link at %.1f MiB/s, want at most its 5.96 and not far below", r)
	}
	t.Logf("\n%s", stdout)
}
