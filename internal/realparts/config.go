package realparts

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Fill returns text with each old string of the old, new pairs replaced
// by its new one, in one pass (as strings.NewReplacer does). Every old
// string must occur: a shipped configuration whose example address moved
// must fail the test, not run with the example.
func Fill(text string, oldnew ...string) (string, error) {
	if len(oldnew)%2 != 0 {
		panic("realparts.Fill: odd number of old, new strings")
	}
	for i := 0; i < len(oldnew); i += 2 {
		if !strings.Contains(text, oldnew[i]) {
			return "", fmt.Errorf("realparts: %q is not in the configuration", oldnew[i])
		}
	}
	return strings.NewReplacer(oldnew...).Replace(text), nil
}

// Load reads a shipped configuration file and fills in the test's
// addresses, ports and paths (see Fill). It fails t if the file cannot be
// read or lacks one of the old strings.
func Load(t testing.TB, path string, oldnew ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Fill(string(b), oldnew...)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// FreeAddr returns a 127.0.0.1:PORT address that was free a moment ago,
// for a server that cannot be told to pick a port itself.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// NginxHTTP returns a whole nginx.conf around site, a file of the http
// context (what /etc/nginx/conf.d/*.conf holds): one worker, and the
// temporary files and the access log (with the upstream each request went
// to) in or through the prefix, where a system nginx keeps them in /var.
func NginxHTTP(site string) string {
	return `# realparts: the main and http contexts of a test around a site file.
worker_processes 1;
events {
    worker_connections 512;
}
http {
    log_format realparts '$remote_addr "$request" $status $body_bytes_sent upstream=$upstream_addr ($upstream_status) $request_time s';
    access_log /dev/stderr realparts;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;

` + site + `
}
`
}

// HAProxyGlobal returns cfg, the sections of an HAProxy configuration
// without a global one (a shipped file goes below the packaged global
// section), after a global section that logs to stderr.
func HAProxyGlobal(cfg string) string {
	return `# realparts: the global section of a test.
global
    log stderr format raw local0 info

` + cfg
}

// listening matches nginx's listen and HAProxy's bind lines.
var listening = regexp.MustCompile(`(?m)^\s*(?:listen|bind)\s+([^\s;]+)`)

// listenAddrs returns the addresses conf listens on. Each must be
// 127.0.0.1:PORT: tests serve nothing beyond this machine.
func listenAddrs(conf string) ([]string, error) {
	var addrs []string
	for _, m := range listening.FindAllStringSubmatch(conf, -1) {
		host, port, err := net.SplitHostPort(m[1])
		if err != nil || host != "127.0.0.1" || port == "0" {
			return nil, fmt.Errorf("the configuration listens on %q: tests listen on 127.0.0.1:PORT only", m[1])
		}
		addrs = append(addrs, m[1])
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("the configuration listens on no address")
	}
	return addrs, nil
}
