package testload

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SilentSocket listens on a new unix socket that accepts every connection
// and never answers: a hung daemon as its clients see it. It returns the
// socket's path; when the test ends the listener and every connection are
// closed.
func SilentSocket(t testing.TB) string {
	t.Helper()
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hinomi-silent-")
	if err != nil {
		t.Fatalf("testload: %v", err)
	}
	path := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("testload: listening on %s: %v", path, err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		_ = os.RemoveAll(dir)
	})
	return path
}
