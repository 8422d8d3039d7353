package realparts

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestListenAddrs(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string // nil: an error
	}{
		{"nginx", "server {\n    listen 127.0.0.1:8080;\n    listen 127.0.0.1:8443 ssl http2;\n}", []string{"127.0.0.1:8080", "127.0.0.1:8443"}},
		{"haproxy", "frontend f\n    bind 127.0.0.1:9000\n", []string{"127.0.0.1:9000"}},
		{"comment", "# listen 80;\n    listen 127.0.0.1:1;", []string{"127.0.0.1:1"}},
		{"every address", "listen 80;", nil},
		{"wildcard", "bind :80", nil},
		{"other host", "listen 10.0.0.1:80;", nil},
		{"any port", "listen 127.0.0.1:0;", nil},
		{"none", "events {}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listenAddrs(tt.conf)
			if tt.want == nil {
				if err == nil {
					t.Errorf("listenAddrs(%q) = %q, want an error", tt.conf, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("listenAddrs(%q): %v", tt.conf, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("listenAddrs(%q) (-want +got):\n%s", tt.conf, diff)
			}
		})
	}
}

func TestFillNeedsEveryOldString(t *testing.T) {
	if got, err := Fill("listen 80;", "listen 80;", "listen 127.0.0.1:1;", "server a;", "server b;"); err == nil {
		t.Errorf("Fill with an absent old string = %q, want an error", got)
	}
}

func ExampleFill() {
	shipped := "upstream u {\n    server replica1.internal:8080;\n}\nserver {\n    listen 80;\n}\n"
	conf, err := Fill(shipped,
		"replica1.internal:8080", "127.0.0.1:40001",
		"listen 80;", "listen 127.0.0.1:40000;")
	if err != nil {
		panic(err)
	}
	fmt.Print(conf)
	// Output:
	// upstream u {
	//     server 127.0.0.1:40001;
	// }
	// server {
	//     listen 127.0.0.1:40000;
	// }
}
