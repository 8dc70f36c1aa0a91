package planner

import (
	"fmt"
	"strconv"
	"time"

	"github.com/mybuild/mybuild/parser"
)

// historyComment is the comment BuildKit gives its history entries.
const historyComment = "buildkit.dockerfile.v0"

// healthcheckString formats a HEALTHCHECK the way BuildKit's history does:
// %+v of its HealthcheckConfig value.
func healthcheckString(h *parser.Healthcheck) string {
	type HealthcheckConfig struct {
		Test          []string
		Interval      time.Duration
		Timeout       time.Duration
		StartPeriod   time.Duration
		StartInterval time.Duration
		Retries       int
	}
	return fmt.Sprintf("%+v", HealthcheckConfig{
		Test:          h.Test,
		Interval:      h.Interval,
		Timeout:       h.Timeout,
		StartPeriod:   h.StartPeriod,
		StartInterval: h.StartInterval,
		Retries:       h.Retries,
	})
}

// prefixArgs is the "|N K=V ..." that BuildKit puts before a RUN's command
// in its history when build args are in scope.
func prefixArgs(used []string) []string {
	if len(used) == 0 {
		return nil
	}
	return append([]string{"|" + strconv.Itoa(len(used))}, used...)
}
