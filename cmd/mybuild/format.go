package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/internal/store"
)

// jsonLines writes one JSON object per line, like docker's --format json.
func jsonLines(w io.Writer, rows []map[string]any) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// filterEntries keeps the entries of repository ref ("repo" or "repo:tag").
func filterEntries(ents []store.Entry, ref string) []store.Entry {
	wantTag := ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		wantTag = ref[i+1:]
	}
	n, err := store.NormalizeName(ref)
	if err != nil {
		return nil
	}
	wantRepo, _ := splitName(n)
	var out []store.Entry
	for _, e := range ents {
		repo, tag := splitName(e.Name)
		if repo == wantRepo && (wantTag == "" || tag == wantTag) {
			out = append(out, e)
		}
	}
	return out
}

// splitName splits "repo:tag"; "" is <none> <none>.
func splitName(n string) (repo, tag string) {
	i := strings.LastIndex(n, ":")
	if n == "" || i < 0 {
		return "<none>", "<none>"
	}
	return n[:i], n[i+1:]
}

// shortID is the first 12 hex digits of a digest, as docker shows IDs.
func shortID(h v1.Hash) string {
	if len(h.Hex) < 12 {
		return h.Hex
	}
	return h.Hex[:12]
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// humanSince says how long ago t was, the way docker does ("2 hours ago").
func humanSince(now, t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := max(now.Sub(t), 0)
	const day = 24 * time.Hour
	switch {
	case d < time.Second:
		return "Less than a second ago"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds ago", d/time.Second)
	case d < 2*time.Minute:
		return "About a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", d/time.Minute)
	case d < 2*time.Hour:
		return "About an hour ago"
	case d < 2*day:
		return fmt.Sprintf("%d hours ago", d/time.Hour)
	case d < 14*day:
		return fmt.Sprintf("%d days ago", d/day)
	case d < 60*day:
		return fmt.Sprintf("%d weeks ago", d/(7*day))
	case d < 730*day:
		return fmt.Sprintf("%d months ago", d/(30*day))
	}
	return fmt.Sprintf("%d years ago", d/(365*day))
}

// humanSize writes a size in decimal units with three significant digits,
// as docker does ("4.26MB").
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

func orMissing(s string) string {
	if s == "" {
		return "<missing>"
	}
	return s
}

// ellipsis shortens s to at most n runes, ending it with "…".
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
