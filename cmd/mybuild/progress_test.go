package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mybuild/mybuild/internal/progress"
)

func TestRendererPlain(t *testing.T) {
	var buf bytes.Buffer
	r := newRenderer("plain", &buf)
	r.event(progress.Event{ID: 1, Name: "[1/2] FROM busybox", Status: progress.Started})
	r.event(progress.Event{ID: 1, Status: progress.Done, Duration: 1500 * time.Millisecond})
	r.event(progress.Event{ID: 2, Name: "[2/2] COPY . /app", Status: progress.Cached})
	r.event(progress.Event{ID: 3, Name: "[3/3] COPY x /x", Status: progress.Started})
	r.event(progress.Event{ID: 3, Status: progress.Failed, Message: "not found"})
	r.close()
	r.event(progress.Event{ID: 4, Name: "after close", Status: progress.Started})
	want := "#1 [1/2] FROM busybox\n#1 DONE 1.5s\n#2 [2/2] COPY . /app\n#2 CACHED\n#3 [3/3] COPY x /x\n#3 ERROR: not found\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("plain output (-want +got):\n%s", diff)
	}
}

func TestRendererJSON(t *testing.T) {
	var buf bytes.Buffer
	r := newRenderer("json", &buf)
	r.event(progress.Event{ID: 7, Name: "[1/1] FROM scratch", Status: progress.Started})
	r.close()
	var ev progress.Event
	if err := json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &ev); err != nil {
		t.Fatalf("output is not one JSON event: %v\n%s", err, buf.String())
	}
	if ev.ID != 7 || ev.Status != progress.Started || ev.Name != "[1/1] FROM scratch" {
		t.Errorf("decoded %+v", ev)
	}
}

func TestRendererTTY(t *testing.T) {
	var buf bytes.Buffer
	r := newRenderer("tty", &buf)
	r.event(progress.Event{ID: 1, Name: "[1/2] FROM busybox", Status: progress.Started, Time: time.Now()})
	r.event(progress.Event{ID: 1, Status: progress.Done, Duration: time.Second})
	r.close()
	out := buf.String()
	for _, w := range []string{"[+] Building", "=> [1/2] FROM busybox", "1.0s", "(1/1)"} {
		if !strings.Contains(out, w) {
			t.Errorf("tty output lacks %q:\n%q", w, out)
		}
	}
}

func TestProgressMode(t *testing.T) {
	var buf bytes.Buffer
	for flag, want := range map[string]string{"auto": "plain", "plain": "plain", "json": "json"} {
		got, err := progressMode(flag, &buf)
		if err != nil || got != want {
			t.Errorf("progressMode(%q) = %q, %v; want %q", flag, got, err, want)
		}
	}
	if _, err := progressMode("fancy", &buf); err == nil || !strings.Contains(err.Error(), "--progress") {
		t.Errorf("progressMode(fancy) error = %v, want one naming --progress", err)
	}
}
