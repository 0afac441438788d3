package testload

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireProgram finds a program a test runs for real (a server built
// from its Go module, a Debian package's binary): the path in the
// environment variable env, else name on PATH, else in $GOPATH/bin where
// `go install` puts it. Without it the test skips, or fails under CI
// (scripts/test installs it), with install saying how to get it.
func RequireProgram(t testing.TB, name, env, install string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", env, p, err)
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	if p := filepath.Join(gopath, "bin", name); gopath != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (set %s, or: %s)", name, env, install)
	}
	t.Skipf("%s is not installed (set %s, or: %s)", name, env, install)
	return ""
}
