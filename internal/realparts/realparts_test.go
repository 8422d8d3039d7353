package realparts

import (
	"net/http"
	"testing"
)

// TestStart starts each server with a configuration that answers every
// request itself.
func TestStart(t *testing.T) {
	tests := []struct {
		name  string
		start func(t testing.TB, addr string) *Proc
	}{
		{"nginx", func(t testing.TB, addr string) *Proc {
			return StartNginx(t, NginxHTTP("server {\n    listen "+addr+";\n    return 204;\n}\n"))
		}},
		{"haproxy", func(t testing.TB, addr string) *Proc {
			return StartHAProxy(t, HAProxyGlobal("frontend f\n    mode http\n    bind "+addr+"\n    http-request return status 204\n"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := FreeAddr(t)
			p := tt.start(t, addr)
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("%v\n%s", err, p.Output())
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("GET / = %s, want 204 No Content", resp.Status)
			}
		})
	}
}
