package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBenchCommand runs every case of ferry bench on a tiny file, so that
// the command keeps working; the numbers themselves are not checked.
func TestBenchCommand(t *testing.T) {
	code, stdout, stderr := ferry(t, "bench", "--size", "256KiB", "--block-size", "16KiB", "--rate", "64MiB/s", "--cuts", "2", "--dir", t.TempDir())
	if code != 0 {
		t.Fatalf("ferry bench: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, c := range benchCases(strings.Contains(stdout, "\nrandom/curl "), 2, strings.Contains(stdout, "\norigin/random/s3/")) {
		if !strings.Contains(stdout, "\n"+c.name+" ") {
			t.Errorf("the table has no row %q:\n%s", c.name, stdout)
		}
	}
	for _, want := range []string{"machine: ", "command: ferry bench --size 256KiB", "bytes_fetched - size: ", "seed: seed/random/ferry/identity/p1", "targets (issue 6):"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the report has no %q:\n%s", want, stdout)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--only", "nothing/like/this"},
		{"bench", "--only", "[bad"},
		{"bench", "--rate", "0"},
		{"bench", "--block-size", "1"},
		{"bench", "fetch", "http://127.0.0.1:1/files/x"},
	} {
		if code, _, _ := ferry(t, args...); code != exitUsage {
			t.Errorf("ferry %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestSelectCases(t *testing.T) {
	all := benchCases(true, 8, true)
	tests := []struct {
		only string
		want []string
	}{
		{"random/ferry/auto/p1", []string{"random/http", "random/ferry/auto/p1"}},
		{"text/*/auto/p4, slow", []string{"text/http", "text/ferry/auto/p4", "slow/text/http", "slow/text/ferry/auto/p1", "slow/text/ferry/identity/p1"}},
		{"resume", []string{"random/http", "resume/random/ferry/auto/p1"}},
		{"seed", []string{"random/ferry/identity/p1", "seed/random/ferry/identity/p1"}},
		{"*/curl", []string{"random/http", "random/curl", "text/http", "text/curl"}},
		{"random/*/identity/p1", []string{"random/http", "random/ferry/identity/p1", "random/ferry-sha256/identity/p1"}},
	}
	for _, tt := range tests {
		t.Run(tt.only, func(t *testing.T) {
			cs, err := selectCases(all, tt.only)
			if err != nil {
				t.Fatalf("selectCases(%q): %v", tt.only, err)
			}
			var got []string
			for _, c := range cs {
				got = append(got, c.name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("selectCases(%q) (-want +got):\n%s", tt.only, diff)
			}
		})
	}
	if cs, err := selectCases(all, ""); err != nil || len(cs) != len(all) {
		t.Errorf("selectCases(\"\") = %d cases, %v; want all %d", len(cs), err, len(all))
	}
}

func TestByteRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"50MiB/s", 50 << 20, true},
		{"50MB/s", 50 << 20, true},
		{"64KiB", 64 << 10, true},
		{"1000000", 1000000, true},
		{"0", 0, false},
		{"fast", 0, false},
	}
	for _, tt := range tests {
		var r byteRate
		err := r.Set(tt.in)
		if (err == nil) != tt.ok || tt.ok && int64(r) != tt.want {
			t.Errorf("Set(%q) = %d, %v; want %d, ok %v", tt.in, r, err, tt.want, tt.ok)
		}
	}
}

func TestCutPlan(t *testing.T) {
	const total = 1 << 20
	plan, again := cutPlan(8, total, 1), cutPlan(8, total, 1)
	var sum int64
	for conn := range 8 {
		f := plan(conn)
		if f.CutAt < 1 || f != again(conn) {
			t.Errorf("connection %d: cut at %d, again at %d; want the same positive offset", conn, f.CutAt, again(conn).CutAt)
		}
		sum += f.CutAt
	}
	if sum >= total {
		t.Errorf("the cuts add up to %d bytes, want fewer than the %d of the stream", sum, total)
	}
	if f := plan(8); f.CutAt != 0 {
		t.Errorf("connection 8 is cut at %d, want no cut after 8 cuts", f.CutAt)
	}
}
