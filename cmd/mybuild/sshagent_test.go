package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// writeKey writes a new ed25519 private key in OpenSSH format (encrypted
// with passphrase when it is not empty) and returns its path and public key.
func writeKey(t *testing.T, dir, name, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var blk *pem.Block
	if passphrase == "" {
		blk, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		blk, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

// TestKeyAgent: key files given to --ssh are served by an agent that lists
// and signs with exactly those keys; a passphrase-protected key is refused
// with a hint; closing the agent ends its socket.
func TestKeyAgent(t *testing.T) {
	dir := t.TempDir()
	k1, pub1 := writeKey(t, dir, "id1", "")
	k2, pub2 := writeKey(t, dir, "id2", "")
	sock := filepath.Join(dir, "agent")
	a, err := startKeyAgent(sock, []string{k1, k2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ac := agent.NewClient(c)
	keys, err := ac.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !bytes.Equal(keys[0].Marshal(), pub1.Marshal()) || !bytes.Equal(keys[1].Marshal(), pub2.Marshal()) {
		t.Errorf("agent lists %d keys, not the two given", len(keys))
	}
	sig, err := ac.Sign(pub2, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub2.Verify([]byte("data"), sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent socket mode: %v %v", fi, err)
	}
	a.close() // with a client still connected
	c.Close()
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("the agent still answers after close")
	}

	k3, _ := writeKey(t, dir, "id3", "secret")
	if _, err := startKeyAgent(filepath.Join(dir, "agent2"), []string{k3}); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("passphrase-protected key: err %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := startKeyAgent(filepath.Join(dir, "agent3"), []string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("not a key: err %v", err)
	}
}

func TestParseSSH(t *testing.T) {
	dir := t.TempDir()
	k1, _ := writeKey(t, dir, "id1", "")
	k2, _ := writeKey(t, dir, "id2", "")
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := func(k string) string {
		if k == "SSH_AUTH_SOCK" {
			return sock
		}
		return ""
	}
	got, err := parseSSH([]string{"default", "keys=" + k1 + "," + k2, "one=" + k1}, env)
	if err != nil {
		t.Fatal(err)
	}
	if got["default"].sock != sock || len(got["keys"].keys) != 2 || len(got["one"].keys) != 1 || got["one"].sock != "" {
		t.Errorf("parsed %+v", got)
	}
	for _, tt := range []struct{ val, want string }{
		{"x=" + sock + "," + k1, "give it alone"},
		{"x=" + dir, "neither an agent socket nor a key file"},
		{"x=" + filepath.Join(dir, "missing"), "no such file"},
		{"=" + k1, "no id"},
		{"x=" + k1 + ",", "empty path"},
	} {
		if _, err := parseSSH([]string{tt.val}, env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseSSH(%q) = %v, want an error with %q", tt.val, err, tt.want)
		}
	}
	if _, err := parseSSH([]string{"x=" + k1, "x=" + k2}, env); err == nil {
		t.Error("an id given twice was accepted")
	}
}
