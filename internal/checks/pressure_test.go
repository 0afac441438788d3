package checks

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/testload"
)

// A CPU-pressure finding names who used the CPU during its sample: here a
// shell spinning in a cgroup of its own, named like a systemd unit, so
// that it is attributed to that unit like any other finding's culprit.
func TestCPUPressureNamesWhoUsesTheCPU(t *testing.T) {
	testload.RequireRoot(t, "it makes a cgroup")
	burner, unit := burnCPU(t)
	table, err := proctable.Scan(t.Context(), host.Live())
	if err != nil {
		t.Fatal(err)
	}
	if p := table.ByPID(burner); p == nil || p.Owner.Kind != "service" || p.Owner.ID != unit {
		t.Fatalf("the burner (pid %d) is not attributed to %s: %+v", burner, unit, p)
	}
	env := &Env{Src: host.Live(), Procs: table, SampleFor: 500 * time.Millisecond}
	f := finding.Finding{Mode: "FM-B4", Summary: "In the last minute some tasks stalled waiting for cpu 56% of the time.",
		Evidence: finding.Evidence{Vars: map[string]string{"resource": "psi", "psi": "cpu"}}}
	if blind := nameCPUUsers(t.Context(), env, &f); blind != "" {
		t.Fatal(blind)
	}
	var proc, owner *finding.Consumer
	var topProc, topOwner *finding.Consumer
	for i := range f.Evidence.Consumers {
		c := &f.Evidence.Consumers[i]
		if c.Kind == "process" && topProc == nil {
			topProc = c
		}
		if c.Kind != "process" && topOwner == nil {
			topOwner = c
		}
		if c.Kind == "process" && c.PID == burner {
			proc = c
		}
		if c.Kind == "service" && c.Name == unit {
			owner = c
		}
	}
	// A spinning shell at raised priority gets a good share of a CPU even
	// on a loaded two-CPU machine.
	if proc == nil || proc.Value < 10 || proc.Unit != "%" || proc.Owner != unit {
		t.Errorf("the burner (pid %d in %s) is not among the CPU users, or at under 10%%: %+v", burner, unit, f.Evidence.Consumers)
	}
	if owner == nil || proc != nil && owner.Value < proc.Value {
		t.Errorf("unit %s is not named with at least its process's use: %+v", unit, f.Evidence.Consumers)
	}
	if !strings.Contains(f.Summary, fmt.Sprintf("pid %d", topProc.PID)) {
		t.Errorf("summary does not name the busiest process %s (pid %d): %s", topProc.Name, topProc.PID, f.Summary)
	}
	// The runbook caps the biggest user: the owner when its processes
	// together use more than the busiest process.
	v := f.Evidence.Vars
	if topOwner != nil && topOwner.Value > topProc.Value {
		if v["owner_label"] != topOwner.Name {
			t.Errorf("runbook vars name %s (%s); want the biggest user %s", v["owner_label"], v["pid"], topOwner.Name)
		}
	} else if v["pid"] != strconv.Itoa(topProc.PID) {
		t.Errorf("runbook vars name pid %s; want the busiest process %d", v["pid"], topProc.PID)
	}
}

// Without a sample, the finding says so instead of naming no one.
func TestCPUUsersWithoutSample(t *testing.T) {
	env := &Env{Src: host.Live(), Procs: &proctable.Table{}}
	f := finding.Finding{Evidence: finding.Evidence{Vars: map[string]string{}}}
	if blind := nameCPUUsers(t.Context(), env, &f); !strings.Contains(blind, "--sample 0") {
		t.Errorf("blind %q; want it to say no sample was taken", blind)
	}
}

// burnCPU starts a shell that spins for at most 20 s in a new cgroup named
// like a systemd unit, and returns its pid and the unit's name.
func burnCPU(t *testing.T) (int, string) {
	t.Helper()
	base := "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err != nil {
		base = filepath.Join(base, "cpu") // cgroup v1
	}
	unit := fmt.Sprintf("hinomi-test-burn-%d.service", os.Getpid())
	dir := filepath.Join(base, unit)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() { rmdirCgroup(t, dir) })
	// The wrapper waits until it is in the cgroup, then becomes timeout,
	// whose child inherits the cgroup and spins. Its raised priority keeps
	// it among the top users on a machine loaded by other work.
	cmd := exec.Command("sh", "-c", `read go; exec timeout 20 nice -n -10 sh -c 'while :; do :; done'`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(f); pid != cmd.Process.Pid && pid > 0 {
				return pid, unit
			}
		}
		time.Sleep(10 * time.Millisecond) // polling for the child to appear
	}
	t.Fatal("the spinning shell did not start within 10 s")
	return 0, ""
}

// rmdirCgroup removes a test cgroup once its processes are gone.
func rmdirCgroup(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("cgroup %s stays: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond) // polling for the killed processes to leave it
	}
}
