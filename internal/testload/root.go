package testload

import (
	"os"
	"testing"
)

// RequireRoot skips the test, saying why it needs root, when it does not
// run as root (a developer's quick check, go test ./...), or fails it when
// the CI environment variable is set: CI runs as root, and never passes
// by skipping.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("testload: CI is set, so root is required: %s (scripts/test runs as root)", why)
	}
	t.Skipf("testload: skipping as uid %d: %s; scripts/test runs it as root", os.Geteuid(), why)
}
