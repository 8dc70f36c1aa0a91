package sandbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNumbers maps "CAP_CHOWN" and the like to capability numbers, for the
// capabilities this kernel supports.
func capNumbers() (map[string]uint, error) {
	caps, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("list capabilities: %w", err)
	}
	m := make(map[string]uint, len(caps))
	for _, c := range caps {
		m["CAP_"+strings.ToUpper(c.String())] = uint(c)
	}
	return m, nil
}

// allCapabilities names every capability the builder itself has (as
// BuildKit's insecure mode gives the capabilities of the process running
// it): a builder in a container without CAP_SYS_RESOURCE cannot give it.
func allCapabilities() []string {
	caps, err := capability.NewPid2(0)
	if err == nil {
		err = caps.Load()
	}
	known, lerr := capability.ListSupported()
	if lerr != nil {
		known = capability.ListKnown()
	}
	var names []string
	for _, c := range known {
		if err == nil && !caps.Get(capability.PERMITTED, c) {
			continue
		}
		names = append(names, "CAP_"+strings.ToUpper(c.String()))
	}
	return names
}

// capSets are a spec's capability sets as bit masks.
type capSets struct {
	Bounding, Permitted, Effective, Inheritable, Ambient uint64
}

// newCapSets reads the spec's sets. A capability this kernel does not
// know is left out, as runc does.
func newCapSets(c *specs.LinuxCapabilities) (*capSets, error) {
	s := &capSets{}
	if c == nil {
		return s, nil
	}
	nums, err := capNumbers()
	if err != nil {
		return nil, err
	}
	mask := func(names []string) uint64 {
		var m uint64
		for _, n := range names {
			if c, ok := nums[n]; ok {
				m |= 1 << c
			}
		}
		return m
	}
	s.Bounding = mask(c.Bounding)
	s.Permitted = mask(c.Permitted)
	s.Effective = mask(c.Effective)
	s.Inheritable = mask(c.Inheritable)
	s.Ambient = mask(c.Ambient)
	return s, nil
}

// dropBounding removes from the calling thread's bounding set every
// capability not in the spec's.
func (s *capSets) dropBounding() error {
	for c := uint(0); c < 64; c++ {
		if s.Bounding&(1<<c) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	return nil
}

// apply sets the calling thread's permitted, effective and inheritable
// sets, and raises its ambient ones.
func (s *capSets) apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		data[i].Permitted = uint32(s.Permitted >> (32 * i))
		data[i].Effective = uint32(s.Effective >> (32 * i))
		data[i].Inheritable = uint32(s.Inheritable >> (32 * i))
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	for c := uint(0); c < 64; c++ {
		if s.Ambient&(1<<c) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", c, err)
		}
	}
	return nil
}
