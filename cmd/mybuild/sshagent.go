package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keyAgent is an SSH agent this process serves on a unix socket, holding
// the private keys of --ssh ID=KEYFILE[,KEYFILE…], as BuildKit serves
// key files given to --ssh. It lives as long as the build.
type keyAgent struct {
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]struct{}
}

// startKeyAgent loads the unencrypted private keys files and serves them
// as an agent on the socket sock (created, mode 0600).
func startKeyAgent(sock string, files []string) (*keyAgent, error) {
	ring := agent.NewKeyring()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read key: %w", errors.Unwrap(err))
		}
		key, err := ssh.ParseRawPrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("key %s is protected by a passphrase: add it to an ssh-agent and pass its socket", f)
		}
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", f, err)
		}
		if err := ring.Add(agent.AddedKey{PrivateKey: key, Comment: filepath.Base(f)}); err != nil {
			return nil, fmt.Errorf("key %s: %w", f, err)
		}
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("serve keys: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("serve keys: %w", err)
	}
	a := &keyAgent{l: l, conn: map[net.Conn]struct{}{}}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed
			}
			a.mu.Lock()
			a.conn[c] = struct{}{}
			a.mu.Unlock()
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				_ = agent.ServeAgent(ring, c)
				c.Close()
				a.mu.Lock()
				delete(a.conn, c)
				a.mu.Unlock()
			}()
		}
	}()
	return a, nil
}

// close stops serving and waits for the connections to end.
func (a *keyAgent) close() {
	a.l.Close()
	a.mu.Lock()
	for c := range a.conn {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}
