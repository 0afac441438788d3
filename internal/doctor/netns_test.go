package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// netnsPair is two network namespaces made by a test, joined by a veth
// pair, with addresses from 198.18.0.0/15 so that no traffic leaves them.
type netnsPair struct {
	A, B         string // namespace names
	DevA, DevB   string // veth ends
	AddrA, AddrB string
}

// ipRun runs ip(8) and fails the test on error.
func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetnsPair makes the namespaces and the link; they are deleted when the
// test ends, whatever happens. subnet picks a /30 of 198.18.0.0/15 (0–255),
// so that tests running at once do not share addresses.
func newNetnsPair(t *testing.T, tag string, subnet int) *netnsPair {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs ip(8) from iproute2: %v", err)
	}
	id := fmt.Sprintf("%s%d", tag, os.Getpid()%100000)
	p := &netnsPair{
		A: "hinomi-" + id + "-a", B: "hinomi-" + id + "-b",
		DevA: "h" + id + "a", DevB: "h" + id + "b",
		AddrA: fmt.Sprintf("198.18.%d.1", subnet), AddrB: fmt.Sprintf("198.18.%d.2", subnet),
	}
	for _, ns := range []string{p.A, p.B} {
		_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover of an interrupted run
		ipRun(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	ipRun(t, "link", "add", p.DevA, "netns", p.A, "type", "veth", "peer", "name", p.DevB, "netns", p.B)
	for _, side := range []struct{ ns, dev, addr string }{{p.A, p.DevA, p.AddrA}, {p.B, p.DevB, p.AddrB}} {
		ipRun(t, "-n", side.ns, "addr", "add", side.addr+"/30", "dev", side.dev)
		ipRun(t, "-n", side.ns, "link", "set", "lo", "up")
		ipRun(t, "-n", side.ns, "link", "set", side.dev, "up")
	}
	return p
}

// inNetns runs fn on a thread that has joined the named namespace, so that
// sockets fn opens belong to it (they stay there afterwards).
func inNetns(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread is not unlocked unless it got back to its own
		// namespace: a goroutine that exits locked takes its thread with it.
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(self)
		target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// udpIn opens a UDP socket in a namespace, bound to addr.
func udpIn(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns(t, ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr)})
		return err
	})
	if err != nil {
		t.Fatalf("udp socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hinomiBinary builds cmd/hinomi once per test into the test's temporary
// directory, for tests that must run the real binary somewhere the test
// process cannot be (another network namespace).
func hinomiBinary(t *testing.T) string {
	t.Helper()
	root, err := testload.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "hinomi")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hinomi")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hinomi: %v\n%s", err, out)
	}
	return bin
}

// doctorJSON runs `hinomi doctor --json` inside a network namespace and
// decodes its findings.
func doctorJSON(t *testing.T, bin, ns string) []finding.Finding {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "doctor", "--json", "--sample", "0", "--color", "never")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == ExitFindings) {
		t.Fatalf("hinomi doctor in %s: %v\n%s", ns, err, stderr.String())
	}
	var doc struct {
		Schema   string            `json:"schema"`
		Findings []finding.Finding `json:"findings"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("hinomi doctor --json: %v\n%s", err, out)
	}
	if doc.Schema != "hinomi.doctor/v1" {
		t.Fatalf("schema %q", doc.Schema)
	}
	return doc.Findings
}
