package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/client"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// reporter shows a download's progress and messages on stderr, in one of
// the --progress modes: bar (a TTY), line (logs: no \r, no ANSI), json
// (one object per line) or none.
type reporter struct {
	mode    string
	w       io.Writer
	noColor bool

	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	start    time.Time
	lastLine time.Time
	lastPct  int64
	last     client.Progress
}

// progressMode resolves --progress=auto against the terminal.
func progressMode(mode string, stderr io.Writer) (string, error) {
	switch mode {
	case "bar", "line", "json", "none":
		return mode, nil
	case "auto", "":
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return "bar", nil
		}
		return "line", nil
	}
	return "", fmt.Errorf("--progress %q: want auto, bar, line, json or none", mode)
}

func newReporter(mode string, w io.Writer) *reporter {
	_, noColor := os.LookupEnv("NO_COLOR")
	return &reporter{mode: mode, w: w, noColor: noColor, start: time.Now(), lastPct: -1}
}

// logf prints a message for people (and, in json mode, as an object).
func (r *reporter) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	switch r.mode {
	case "json":
		r.json(messageLine{Event: "message", Time: stamp(), Message: msg})
	case "bar":
		if r.bar != nil {
			r.bar.Clear()
		}
		fmt.Fprintf(r.w, "ferry: %s\n", msg)
	default:
		fmt.Fprintf(r.w, "ferry: %s\n", msg)
	}
}

// progressLine is a progress event of --progress json; ferry bench reads
// the same type back.
type progressLine struct {
	Event      string  `json:"event"` // "progress"
	Time       string  `json:"time"`
	Phase      string  `json:"phase"`
	Size       int64   `json:"size"`
	Done       int64   `json:"done"`
	Fetched    int64   `json:"fetched"`
	Reused     int64   `json:"reused"`
	Reconnects int     `json:"reconnects"`
	Refetched  int     `json:"refetched"`
	Rate       float64 `json:"rate"`
}

// messageLine is a message of --progress json.
type messageLine struct {
	Event   string `json:"event"` // "message"
	Time    string `json:"time"`
	Message string `json:"message"`
}

func (r *reporter) json(v any) {
	b, _ := json.Marshal(v)
	r.w.Write(append(b, '\n'))
}

func stamp() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// progress receives client.Progress updates.
func (r *reporter) progress(p client.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.last
	r.last = p
	switch r.mode {
	case "bar":
		if r.bar == nil && (p.Size >= 0 || p.Phase == "following") {
			// A followed file's size is not known until it is complete:
			// a spinner (max -1) until then.
			r.bar = progressbar.NewOptions64(p.Size,
				progressbar.OptionSetWriter(r.w), progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true),
				progressbar.OptionUseIECUnits(true), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionEnableColorCodes(!r.noColor), progressbar.OptionSetWidth(30),
				progressbar.OptionSetDescription("ferry"), progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionSetRenderBlankState(true))
		}
		if r.bar != nil {
			if p.Size >= 0 && r.bar.GetMax64() < 0 {
				r.bar.ChangeMax64(p.Size)
			}
			r.bar.Set64(p.Done)
			if p.Reconnects != prev.Reconnects {
				r.bar.Describe(fmt.Sprintf("ferry (%d reconnects)", p.Reconnects))
			}
			if p.Phase == "done" {
				r.bar.Finish()
				fmt.Fprintln(r.w)
			}
		}
	case "line":
		r.line(p, prev)
	case "json":
		if p.Phase != prev.Phase || p.Phase == "done" || time.Since(r.lastLine) >= time.Second {
			r.lastLine = time.Now()
			r.json(progressLine{Event: "progress", Time: stamp(), Phase: p.Phase, Size: p.Size, Done: p.Done,
				Fetched: p.Fetched, Reused: p.Reused, Reconnects: p.Reconnects, Refetched: p.Refetched,
				Rate: r.rate(p)})
		}
	}
}

// line prints a plain line at most every 10 s or 5 %, and at each phase.
func (r *reporter) line(p, prev client.Progress) {
	var pct int64 = -1
	if p.Size > 0 {
		pct = p.Done * 100 / p.Size
	}
	due := time.Since(r.lastLine) >= 10*time.Second || pct >= r.lastPct+5 || p.Phase != prev.Phase && (p.Phase == "verifying" || p.Phase == "following")
	if !due || p.Size < 0 && p.Phase != "following" || p.Phase == "done" {
		return
	}
	if p.Size < 0 { // following a file still being written
		r.lastLine = time.Now()
		fmt.Fprintf(r.w, "ferry: following   %s so far, %s/s, waiting for the writer to finish, %d reconnects\n",
			humanBytes(p.Done), humanBytes(int64(r.rate(p))), p.Reconnects)
		return
	}
	r.lastLine = time.Now()
	if pct >= 0 {
		r.lastPct = pct / 5 * 5
	}
	rate := r.rate(p)
	eta := "?"
	if rate > 0 && p.Size >= 0 {
		eta = (time.Duration(float64(p.Size-p.Done)/rate) * time.Second).Round(time.Second).String()
	}
	size := "?"
	if p.Size >= 0 {
		size = humanBytes(p.Size)
	}
	fmt.Fprintf(r.w, "ferry: %-11s %3d%% %s of %s, %s/s, ETA %s, %d reconnects\n",
		p.Phase, max(pct, 0), humanBytes(p.Done), size, humanBytes(int64(rate)), eta, p.Reconnects)
}

// rate is the average network rate of this run, in bytes per second.
func (r *reporter) rate(p client.Progress) float64 {
	s := time.Since(r.start).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(p.Fetched) / s
}
