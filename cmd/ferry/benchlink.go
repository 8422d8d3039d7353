package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/chunker"
	harness "github.com/ferry-dev/ferry/internal/bench"
	"github.com/ferry-dev/ferry/internal/link"
)

// linkCase is one client of ferry bench --link.
type linkCase struct {
	name string
	argv func(base, file, out string) []string
}

// linkCases are the clients measured on a shaped link: the peers against
// /files/ (Go's net/http, curl, aria2c with four connections) and ferry
// get, single stream and four, with and without compression.
func (b *bench) linkCases() []linkCase {
	cs := []linkCase{{"http", func(base, file, out string) []string {
		return []string{b.exe, "bench", "fetch", base + chunker.PathFiles + file, out}
	}}}
	if _, err := exec.LookPath("curl"); err == nil {
		cs = append(cs, linkCase{"curl", func(base, file, out string) []string {
			return []string{"curl", "-sSf", "-o", out, base + chunker.PathFiles + file}
		}})
	}
	if _, err := exec.LookPath("aria2c"); err == nil {
		cs = append(cs, linkCase{"aria2c-x4", func(base, file, out string) []string {
			return []string{"aria2c", "-q", "-x4", "-s4", "-k1M", "--allow-overwrite=true", "--file-allocation=none",
				"-d", filepath.Dir(out), "-o", filepath.Base(out), base + chunker.PathFiles + file}
		}})
	}
	for _, v := range []struct {
		name     string
		parallel int
		codec    string
	}{{"ferry/identity/p1", 1, "identity"}, {"ferry/auto/p1", 1, "auto"}, {"ferry/auto/p4", 4, "auto"}} {
		cs = append(cs, linkCase{v.name, func(base, file, out string) []string {
			return b.argv(benchCase{client: "ferry", codec: v.codec, parallel: v.parallel}, base, file, out)
		}})
	}
	return cs
}

// linkWanted says whether the case kind/name runs under --only: http, the
// baseline, always does.
func linkWanted(only, kind, name string) bool {
	if strings.TrimSpace(only) == "" || name == "http" {
		return true
	}
	for _, pat := range strings.Split(only, ",") {
		if pat = strings.Trim(strings.TrimSpace(pat), "/"); pat != "" && matchCase(pat, kind+"/"+name) {
			return true
		}
	}
	return false
}

// linkRun is what the runs of one case measured.
type linkRun struct {
	seconds []float64
	wire    int64 // bytes the server's end of the link sent, IP headers included, in the fastest run
}

// runLinks measures every link case on each named link, repeat times
// each, interleaved, and writes a table per link.
func (b *bench) runLinks(ctx context.Context, names []string, only string, repeat int, stdout io.Writer) error {
	var profiles []link.Profile
	for _, n := range names {
		p, err := link.Lookup(n)
		if err != nil {
			return err
		}
		profiles = append(profiles, p)
	}
	if err := link.Check(); err != nil {
		return fmt.Errorf("--link: %w", err)
	}
	if err := b.prepare(ctx, []benchCase{{kind: "random"}, {kind: "text"}}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "machine: %s\nfiles:   %s each (random, text), block size %s; min/median/max of %d runs\n",
		harness.Machine(), formatSize(b.size), formatSize(int64(b.blockSize)), repeat)
	for _, p := range profiles {
		if err := b.runLink(ctx, p, only, repeat, stdout); err != nil {
			return fmt.Errorf("link %s: %w", p.Name, err)
		}
	}
	return nil
}

func (b *bench) runLink(ctx context.Context, p link.Profile, only string, repeat int, stdout io.Writer) error {
	l, err := link.Setup(p)
	if err != nil {
		return err
	}
	defer l.Close()
	addr := l.ServerIP + ":8080"
	srv, err := harness.StartServerArgv(ctx, link.In(l.Server, b.exe, "serve", "--root", b.data, "--addr", addr,
		"--block-size", strconv.Itoa(b.blockSize), "--log", "json", "--cache-dir", b.cache))
	if err != nil {
		return err
	}
	defer srv.Stop()
	base := "http://" + addr
	if p.RTT > 0 {
		// Until it runs, the link's packets wait in the queue unanswered
		// and the probe below gets no answer.
		pd := exec.CommandContext(ctx, "ip", "netns", "exec", l.Client, b.exe, "bench", "packet-delay",
			strconv.Itoa(link.DelayQueue), (p.RTT / 2).String())
		pd.Stderr = b.log
		if err := pd.Start(); err != nil {
			return err
		}
		defer func() { pd.Process.Signal(os.Interrupt); pd.Wait() }()
	}
	client := func(argv ...string) []string { return link.In(l.Client, argv...) }
	// The link is up when the client reaches the server; the time of that
	// GET, after the first, is the link's measured round trip.
	probe := filepath.Join(b.out, "probe")
	var rtt time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := harness.RunChild(ctx, client(b.exe, "bench", "fetch", base+"/healthz", probe))
		if err == nil {
			if u2, err := harness.RunChild(ctx, client("curl", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_connect}", base+"/healthz")); err == nil {
				f := strings.Fields(string(u2.Stdout))
				if len(f) == 2 {
					st, _ := strconv.ParseFloat(f[0], 64)
					ct, _ := strconv.ParseFloat(f[1], 64)
					rtt = time.Duration((st - ct) * float64(time.Second))
				}
			}
			_ = u
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server is not reachable over the link: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, with a deadline
	}
	for _, kind := range []string{"random", "text"} { // the manifests, so no case waits for hashing
		if _, err := harness.RunChild(ctx, client(b.exe, "bench", "fetch", base+chunker.PathManifest+kind+".bin", probe)); err != nil {
			return err
		}
	}
	os.Remove(probe)

	cases := b.linkCases()
	results := map[string]*linkRun{}
	for round := range repeat {
		for _, kind := range []string{"random", "text"} {
			for _, c := range cases {
				if !linkWanted(only, kind, c.name) {
					continue
				}
				name := kind + "/" + c.name
				out := filepath.Join(b.out, kind+".bin")
				for _, q := range []string{out, out + ".part", out + ".ferry-state", out + ".aria2"} {
					os.Remove(q)
				}
				tx0, _ := txBytes(l.Server)
				u, err := harness.RunChild(ctx, client(c.argv(base, kind+".bin", out)...))
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if info, err := os.Stat(out); err != nil || info.Size() != b.size {
					return fmt.Errorf("%s: %s is not the %d bytes of the file", name, out, b.size)
				}
				tx1, _ := txBytes(l.Server)
				r := results[name]
				if r == nil {
					r = &linkRun{}
					results[name] = r
				}
				if len(r.seconds) == 0 || u.Seconds < slices.Min(r.seconds) {
					r.wire = tx1 - tx0
				}
				r.seconds = append(r.seconds, u.Seconds)
				fmt.Fprintf(b.log, "ferry bench: %s, round %d/%d: %-28s %7.2f s\n", p.Name, round+1, repeat, name, u.Seconds)
			}
		}
	}
	cc, _ := exec.Command("ip", "netns", "exec", l.Server, "sysctl", "-n", "net.ipv4.tcp_congestion_control").Output()
	fmt.Fprintf(stdout, "\nlink %s; measured: %v round trip (curl's first byte after connect, /healthz); TCP congestion control: %s\n\n",
		p, rtt.Round(100*time.Microsecond), strings.TrimSpace(string(cc)))
	fmt.Fprintf(stdout, "%-28s %7s %7s %7s %8s %7s %7s %7s %6s\n", "case", "min s", "median", "max s", "MiB/s", "×http", "×curl", "×aria2", "wire")
	for _, kind := range []string{"random", "text"} {
		med := func(name string) float64 {
			if r := results[kind+"/"+name]; r != nil {
				return median(r.seconds)
			}
			return 0
		}
		ratio := func(base, v float64) string {
			if base == 0 {
				return "-"
			}
			return strconv.FormatFloat(base/v, 'f', 2, 64)
		}
		for _, c := range cases {
			r := results[kind+"/"+c.name]
			if r == nil {
				continue
			}
			m := median(r.seconds)
			fmt.Fprintf(stdout, "%-28s %7.2f %7.2f %7.2f %8.1f %7s %7s %7s %6.3f\n", kind+"/"+c.name,
				slices.Min(r.seconds), m, slices.Max(r.seconds), float64(b.size)/m/(1<<20),
				ratio(med("http"), m), ratio(med("curl"), m), ratio(med("aria2c-x4"), m), float64(r.wire)/float64(b.size))
		}
	}
	fmt.Fprintln(stdout, "\n×: the peer's median time over this case's (above 1: faster). wire: bytes the server's end of the link sent (TCP/IP headers included) over the file size, in the fastest run.")
	return nil
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// txBytes returns the bytes sent by the interfaces of namespace ns but
// loopback.
func txBytes(ns string) (int64, error) {
	out, err := exec.Command("ip", "-n", ns, "-s", "-j", "link", "show").Output()
	if err != nil {
		return 0, err
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return 0, err
	}
	var n int64
	for _, l := range links {
		if l.Name != "lo" {
			n += l.Stats.TX.Bytes
		}
	}
	return n, nil
}

// runPacketDelay is "ferry bench packet-delay QUEUE ONE-WAY-DELAY": the
// delay of a shaped link (link.PacketDelay), run in the client's
// namespace. It stops at SIGINT or SIGTERM.
func runPacketDelay(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: ferry bench packet-delay QUEUE DELAY")
		return exitUsage
	}
	q, err1 := strconv.ParseUint(args[0], 10, 16)
	d, err2 := time.ParseDuration(args[1])
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(stderr, "ferry bench packet-delay: %v\n", err)
		return exitUsage
	}
	if err := link.PacketDelay(ctx, uint16(q), d); err != nil {
		fmt.Fprintf(stderr, "ferry bench packet-delay: %v\n", err)
		return exitFailure
	}
	return exitOK
}
