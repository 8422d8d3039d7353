// Package link sets up a shaped network link between two network
// namespaces for ferry bench: a veth pair whose rate the kernel limits
// (tbf), with packet loss by nftables where a profile has loss. The
// kernels Ferry is measured on have no netem, so the round-trip delay is
// made with NFQUEUE: iptables rules in the client's namespace queue every
// packet crossing the link, and PacketDelay (run there as ferry bench
// packet-delay) lets each go on after half the round trip, so that TCP
// sees a long path. It needs root, ip and tc (iproute2), iptables for a
// delay and nft for loss.
package link

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Profile is a link to measure on.
type Profile struct {
	Name string
	Rate int64         // bytes per second, each way
	RTT  time.Duration // round trip
	Loss float64       // the fraction of packets dropped, each way
}

// Profiles are the links of ferry bench --link.
var Profiles = []Profile{
	{Name: "dsl", Rate: 50e6 / 8, RTT: 30 * time.Millisecond},
	{Name: "office", Rate: 50e6, RTT: 20 * time.Millisecond},
	{Name: "wan", Rate: 1e9 / 8, RTT: 60 * time.Millisecond, Loss: 0.005},
	{Name: "mobile", Rate: 20e6 / 8, RTT: 80 * time.Millisecond, Loss: 0.01},
	{Name: "shaped", Rate: 50 << 20}, // kernel-shaped 50 MiB/s, no delay
}

// Lookup returns the profile of a name.
func Lookup(name string) (Profile, error) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
	}
	var names []string
	for _, p := range Profiles {
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("no link %q; there are %s", name, strings.Join(names, ", "))
}

func (p Profile) String() string {
	s := fmt.Sprintf("%s: %s", p.Name, rate(p.Rate))
	if p.RTT > 0 {
		s += fmt.Sprintf(", %v RTT (packets held in NFQUEUE, released by a user-space timer)", p.RTT)
	}
	if p.Loss > 0 {
		s += fmt.Sprintf(", %.1f %% loss (nftables, each way)", p.Loss*100)
	}
	return s + ", rate by tbf"
}

func rate(r int64) string {
	if r%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB/s", r>>20)
	}
	return fmt.Sprintf("%.0f Mbit/s", float64(r)*8/1e6)
}

// DelayQueue is the NFQUEUE number of a link's delay, in the client's
// namespace.
const DelayQueue = 7

// Link is a shaped link set up between two namespaces.
type Link struct {
	Profile
	Server, Client     string // namespace names
	ServerIP, ClientIP string
}

// Check says why links cannot be set up here, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("shaped links need root (network namespaces, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("shaped links need %s (apt-get install iproute2)", tool)
		}
	}
	return nil
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Setup creates the namespaces, the veth pair between them and its
// shaping. Close undoes it.
func Setup(p Profile) (*Link, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if p.Loss > 0 {
		if _, err := exec.LookPath("nft"); err != nil {
			return nil, errors.New("a link with loss needs nft (apt-get install nftables)")
		}
	}
	if p.RTT > 0 {
		if _, err := exec.LookPath("iptables"); err != nil {
			return nil, errors.New("a link with delay needs iptables, for NFQUEUE (apt-get install iptables)")
		}
	}
	id := strconv.Itoa(os.Getpid() % 100000)
	l := &Link{Profile: p, Server: "ferry-s" + id, Client: "ferry-c" + id, ServerIP: "10.77.0.1", ClientIP: "10.77.0.2"}
	sv, cv := "fs"+id, "fc"+id
	steps := [][]string{
		{"ip", "netns", "add", l.Server},
		{"ip", "netns", "add", l.Client},
		{"ip", "link", "add", sv, "type", "veth", "peer", "name", cv},
		{"ip", "link", "set", sv, "netns", l.Server},
		{"ip", "link", "set", cv, "netns", l.Client},
		{"ip", "-n", l.Server, "addr", "add", l.ServerIP + "/24", "dev", sv},
		{"ip", "-n", l.Client, "addr", "add", l.ClientIP + "/24", "dev", cv},
		{"ip", "-n", l.Server, "link", "set", sv, "up"},
		{"ip", "-n", l.Client, "link", "set", cv, "up"},
		{"ip", "-n", l.Server, "link", "set", "lo", "up"},
		{"ip", "-n", l.Client, "link", "set", "lo", "up"},
	}
	// The burst holds at least one GSO packet (64 KiB) and 4 ms at the rate,
	// the queue 50 ms: at less, tbf drops whole segments of a fast sender.
	burst := max(p.Rate/250, 128<<10)
	for _, end := range [][2]string{{l.Server, sv}, {l.Client, cv}} {
		steps = append(steps, []string{"tc", "-n", end[0], "qdisc", "add", "dev", end[1], "root", "tbf",
			"rate", strconv.FormatInt(p.Rate*8, 10) + "bit", "burst", strconv.FormatInt(burst, 10), "latency", "50ms"})
		if p.Loss > 0 {
			// One segment per packet, as on a real path: else the loss
			// drops a whole GSO packet of up to 45 segments at a time,
			// and a 0.5 % loss is 45 times rarer for TCP.
			steps = append(steps, []string{"ip", "-n", end[0], "link", "set", "dev", end[1], "gso_max_segs", "1"})
			n := strconv.Itoa(int(p.Loss * 10000))
			steps = append(steps,
				[]string{"ip", "netns", "exec", end[0], "nft", "add", "table", "inet", "ferryloss"},
				[]string{"ip", "netns", "exec", end[0], "nft", "add", "chain", "inet", "ferryloss", "in", "{ type filter hook input priority 0; }"},
				[]string{"ip", "netns", "exec", end[0], "nft", "add", "rule", "inet", "ferryloss", "in", "iifname", end[1], "numgen", "random", "mod", "10000", "<", n, "drop"})
		}
	}
	if p.RTT > 0 {
		// Both ways through one queue: every packet is held as long, so
		// they leave it in order.
		q := strconv.Itoa(DelayQueue)
		steps = append(steps,
			In(l.Client, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", cv, "-j", "NFQUEUE", "--queue-num", q),
			In(l.Client, "iptables", "-t", "mangle", "-A", "POSTROUTING", "-o", cv, "-j", "NFQUEUE", "--queue-num", q))
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// In returns argv run in namespace ns.
func In(ns string, argv ...string) []string {
	return slices.Concat([]string{"ip", "netns", "exec", ns}, argv)
}

// Close deletes the namespaces, and the veth pair with them.
func (l *Link) Close() error {
	err1 := run("ip", "netns", "del", l.Server)
	err2 := run("ip", "netns", "del", l.Client)
	return errors.Join(err1, err2)
}
