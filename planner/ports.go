package planner

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// signals are the Linux signal names STOPSIGNAL accepts, without "SIG".
var signals = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CLD": true, "CONT": true,
	"FPE": true, "HUP": true, "ILL": true, "INT": true, "IO": true, "IOT": true,
	"KILL": true, "PIPE": true, "POLL": true, "PROF": true, "PWR": true, "QUIT": true,
	"SEGV": true, "STKFLT": true, "STOP": true, "SYS": true, "TERM": true, "TRAP": true,
	"TSTP": true, "TTIN": true, "TTOU": true, "URG": true, "USR1": true, "USR2": true,
	"VTALRM": true, "WINCH": true, "XCPU": true, "XFSZ": true,
	"RTMIN": true, "RTMAX": true,
}

// checkSignal validates a STOPSIGNAL: a non-zero number or a signal name,
// with or without "SIG", in any case.
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 {
			return fmt.Errorf("invalid signal: %s", s)
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if signals[name] {
		return nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= 15 {
			return nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX-"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= 14 {
			return nil
		}
	}
	return fmt.Errorf("invalid signal: %s", s)
}

// parsePort turns an EXPOSE word ([ip:][hostPort:]port[-end][/proto]) into
// "port/proto" entries, one per port of a range.
func parsePort(raw string) ([]string, error) {
	ip, hostPort, port := splitPortParts(raw)
	port, proto, _ := strings.Cut(port, "/")
	if port == "" {
		return nil, fmt.Errorf("invalid port: %q: no port specified", raw)
	}
	switch strings.ToLower(proto) {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid port: %q: invalid proto: %s", raw, proto)
	}
	if strings.HasPrefix(ip, "[") {
		h, _, err := net.SplitHostPort(ip + ":")
		if err != nil {
			return nil, fmt.Errorf("invalid IP address %v: %w", ip, err)
		}
		ip = h
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, errors.New("invalid IP address: " + ip)
	}
	start, end, err := parsePortRange(port)
	if err != nil {
		return nil, errors.New("invalid containerPort: " + port)
	}
	if hostPort != "" {
		hs, he, err := parsePortRange(hostPort)
		if err != nil {
			return nil, errors.New("invalid hostPort: " + hostPort)
		}
		if end-start != he-hs && end != start {
			return nil, fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", port, hostPort)
		}
	}
	out := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		out = append(out, strconv.Itoa(p)+"/"+strings.ToLower(proto))
	}
	return out, nil
}

func splitPortParts(raw string) (ip, hostPort, port string) {
	parts := strings.Split(raw, ":")
	n := len(parts)
	switch n {
	case 1:
		return "", "", parts[0]
	case 2:
		return "", parts[0], parts[1]
	}
	return strings.Join(parts[:n-2], ":"), parts[n-2], parts[n-1]
}

func parsePortRange(s string) (int, int, error) {
	if s == "" {
		return 0, 0, errors.New("empty string specified for ports")
	}
	a, b, ok := strings.Cut(s, "-")
	start, err := parsePortNumber(a)
	if err != nil {
		return 0, 0, err
	}
	if !ok || a == b {
		return start, start, nil
	}
	end, err := parsePortNumber(b)
	if err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, errors.New("invalid port range: " + s)
	}
	return start, end, nil
}

func parsePortNumber(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 65535 {
		return 0, errors.New("value out of range (0–65535)")
	}
	return int(n), nil
}
