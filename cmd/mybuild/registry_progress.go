package main

import (
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/internal/progress"
	"github.com/mybuild/mybuild/internal/registry"
)

// transferView turns registry transfer reports into progress events: one
// step per layer ("pull sha256:0123456789ab (2.1 MB)"), Log events with the
// bytes so far and the rate (at most one per interval, and a last one when
// the layer is done), then Done or Failed.
type transferView struct {
	verb     string
	sink     progress.Sink
	interval time.Duration

	mu     sync.Mutex
	layers map[v1.Hash]*layerTransfer
}

type layerTransfer struct {
	id          int
	name        string
	start, last time.Time
	finished    bool
}

// newTransferView reports transfers to sink; the Log interval suits mode
// (a live view redraws often, plain and JSON lines come every 2 seconds).
func newTransferView(verb, mode string, sink progress.Sink) *transferView {
	interval := 2 * time.Second
	if mode == "tty" {
		interval = 200 * time.Millisecond
	}
	return &transferView{verb: verb, sink: sink, interval: interval, layers: map[v1.Hash]*layerTransfer{}}
}

// update is a registry.Options.OnTransfer.
func (v *transferView) update(t registry.Transfer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	l := v.layers[t.Digest]
	if l == nil {
		l = &layerTransfer{id: len(v.layers) + 1, finished: true}
		l.name = fmt.Sprintf("%s %s", v.verb, shortDigest(t.Digest))
		if t.Size >= 0 {
			l.name += " (" + humanBytes(t.Size) + ")"
		}
		v.layers[t.Digest] = l
	}
	if l.finished {
		// First report, or a retry after a failure.
		l.start, l.last, l.finished = now, now, false
		v.sink(progress.Event{Time: now, ID: l.id, Name: l.name, Status: progress.Started})
	}
	switch {
	case t.Err != nil:
		l.finished = true
		v.sink(progress.Event{Time: now, ID: l.id, Name: l.name, Status: progress.Failed,
			Message: fmt.Sprintf("after %s: %v", humanBytes(t.Complete), t.Err), Duration: now.Sub(l.start)})
	case t.Done:
		l.finished = true
		v.sink(progress.Event{Time: now, ID: l.id, Name: l.name, Status: progress.Log, Message: transferLine(t, now.Sub(l.start))})
		v.sink(progress.Event{Time: now, ID: l.id, Name: l.name, Status: progress.Done, Duration: now.Sub(l.start)})
	case now.Sub(l.last) >= v.interval:
		l.last = now
		v.sink(progress.Event{Time: now, ID: l.id, Name: l.name, Status: progress.Log, Message: transferLine(t, now.Sub(l.start))})
	}
}

// transferLine is "12.3 MB / 40.0 MB, 5.1 MB/s".
func transferLine(t registry.Transfer, elapsed time.Duration) string {
	s := humanBytes(t.Complete)
	if t.Size >= 0 && !t.Done {
		s += " / " + humanBytes(t.Size)
	}
	if elapsed > 0 {
		s += ", " + humanBytes(int64(float64(t.Complete)/elapsed.Seconds())) + "/s"
	}
	return s
}

// humanBytes writes n in decimal units, as docker does: "2.1 MB".
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func shortDigest(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}
