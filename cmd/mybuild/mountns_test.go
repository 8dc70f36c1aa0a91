package main

import (
	"strings"
	"testing"
)

// TestMountsFilesystems: only a build, however it is spelled, gets a mount
// namespace; every other command (and help) runs as it is.
func TestMountsFilesystems(t *testing.T) {
	for _, tc := range []struct {
		args string
		want bool
	}{
		{"build .", true},
		{"--root /x build -t a .", true},
		{"--root=/x build .", true},
		{"-t a .", true}, // mybuild [build options] CONTEXT
		{".", true},
		{"build --help", true},
		{"", false},
		{"--help", false},
		{"-h", false},
		{"help", false},
		{"--root /x", false},
		{"images", false},
		{"--root /x inspect busybox", false},
		{"fsck --repair", false}, // it must see and unmount the host's leftovers
		{"prune --mounts", false},
		{"pull busybox", false},
		{"save busybox -o x.tar", false},
	} {
		if got := mountsFilesystems(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("mountsFilesystems(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
