package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/progress"
)

// progressMode resolves --progress: "auto" becomes "tty" on a terminal and
// "plain" elsewhere.
func progressMode(flag string, w io.Writer) (string, error) {
	switch flag {
	case "plain", "json", "tty":
		return flag, nil
	case "auto", "":
		if isTerminal(w) && os.Getenv("CI") == "" {
			return "tty", nil
		}
		return "plain", nil
	}
	return "", fmt.Errorf("invalid --progress %q: want auto, plain or json", flag)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// renderer turns progress events into output.
type renderer struct {
	mode  string
	w     io.Writer
	mu    sync.Mutex
	start time.Time
	// tty view state
	steps  []*ttyStep
	byID   map[int]*ttyStep
	lines  int
	done   chan struct{}
	closed bool
}

type ttyStep struct {
	name    string
	started time.Time
	status  progress.Status
	dur     time.Duration
	msg     string
}

func newRenderer(mode string, w io.Writer) *renderer {
	r := &renderer{mode: mode, w: w, start: time.Now(), byID: map[int]*ttyStep{}, done: make(chan struct{})}
	if mode == "tty" {
		go r.tick()
	}
	return r
}

// event is the progress.Sink of a build.
func (r *renderer) event(ev progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	switch r.mode {
	case "json":
		b, _ := json.Marshal(ev)
		fmt.Fprintf(r.w, "%s\n", b)
	case "plain":
		switch ev.Status {
		case progress.Started:
			fmt.Fprintf(r.w, "#%d %s\n", ev.ID, ev.Name)
		case progress.Done:
			fmt.Fprintf(r.w, "#%d DONE %.1fs\n", ev.ID, ev.Duration.Seconds())
		case progress.Cached:
			fmt.Fprintf(r.w, "#%d %s\n#%d CACHED\n", ev.ID, ev.Name, ev.ID)
		case progress.Failed:
			fmt.Fprintf(r.w, "#%d ERROR: %s\n", ev.ID, ev.Message)
		case progress.Log:
			fmt.Fprintf(r.w, "#%d %.3f %s\n", ev.ID, time.Since(r.start).Seconds(), ev.Message)
		}
	case "tty":
		s := r.byID[ev.ID]
		if s == nil {
			s = &ttyStep{name: ev.Name, started: ev.Time}
			r.byID[ev.ID] = s
			r.steps = append(r.steps, s)
		}
		if ev.Status == progress.Log {
			s.msg = ev.Message
		} else {
			s.status, s.dur = ev.Status, ev.Duration
			if ev.Status == progress.Failed {
				s.msg = ev.Message
			}
		}
		r.drawLocked()
	}
}

func (r *renderer) tick() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
			r.mu.Lock()
			if !r.closed {
				r.drawLocked()
			}
			r.mu.Unlock()
		}
	}
}

// drawLocked redraws the live view in place.
func (r *renderer) drawLocked() {
	var b strings.Builder
	if r.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", r.lines)
	}
	finished := 0
	for _, s := range r.steps {
		if s.status != progress.Started {
			finished++
		}
	}
	fmt.Fprintf(&b, "\x1b[2K[+] Building %.1fs (%d/%d)\n", time.Since(r.start).Seconds(), finished, len(r.steps))
	for _, s := range r.steps {
		line := " => " + s.name
		switch s.status {
		case progress.Started:
			if m := []rune(s.msg); len(m) > 0 {
				// The latest note (bytes and rate of a transfer, a line of
				// output), cut so the line does not wrap.
				line += "  " + string(m[:min(len(m), 60)])
			}
			line += fmt.Sprintf("  %.1fs", time.Since(s.started).Seconds())
		case progress.Cached:
			line = " => CACHED " + s.name
		case progress.Failed:
			line = " => ERROR " + s.name + ": " + s.msg
		default:
			line += fmt.Sprintf("  %.1fs", s.dur.Seconds())
		}
		fmt.Fprintf(&b, "\x1b[2K%s\n", line)
	}
	r.lines = len(r.steps) + 1
	io.WriteString(r.w, b.String())
}

// close stops the live view after a last redraw; safe to call twice.
func (r *renderer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.mode == "tty" {
		r.drawLocked()
		close(r.done)
	}
	r.closed = true
}
