// Package progress carries build progress as data: steps send Events, the
// command line renders them (a live view on a terminal, plain lines, or JSON).
package progress

import (
	"time"
)

// Status is what an Event reports about a step.
type Status string

// Step statuses.
const (
	Started Status = "started" // the step began
	Done    Status = "done"    // the step finished
	Cached  Status = "cached"  // the step's result came from the cache
	Failed  Status = "error"   // the step failed; Message holds the error
	Log     Status = "log"     // a line of output or a note; Message holds it
)

// Event is one progress report.
type Event struct {
	Time     time.Time     `json:"time"`
	ID       int           `json:"id"`   // step number, unique within a build ("#3")
	Name     string        `json:"name"` // "[2/5] COPY . /app"
	Status   Status        `json:"status"`
	Message  string        `json:"message,omitempty"`
	Duration time.Duration `json:"duration,omitempty"` // for Done, Cached, Failed
}

// Sink receives events. It must be safe for concurrent use.
type Sink func(Event)

// Discard is a Sink that drops every event.
func Discard(Event) {}
