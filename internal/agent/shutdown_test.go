package agent_test

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

// TestAgentStopsMidScan runs the real hinomi agent, held to 5 % of a CPU so
// that its /proc pass over a real load takes seconds, against a real HTTP
// tower; it sends SIGTERM while the agent has a process's /proc directory
// open and requires the agent to exit within 1 s, cleanly, without sending
// findings from the pass it cut short.
func TestAgentStopsMidScan(t *testing.T) {
	testload.RequireRoot(t, "it limits the agent's CPU with a cgroup")
	testload.Start(t, "-children", "300", "-files", "15000", "-watches", "3000", "-instances", "2")
	bin := buildHinomi(t)
	procs := cpuLimitedCgroup(t, 5)

	var mu sync.Mutex
	kinds := map[string]int{}
	tower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != wire.Path {
			http.NotFound(w, r)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var env wire.Envelope
		if err := json.NewDecoder(zr).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var acked uint64
		mu.Lock()
		for _, rec := range env.Records {
			kinds[rec.Kind]++
			acked = max(acked, rec.Seq)
		}
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(wire.Reply{Acked: acked})
	}))
	t.Cleanup(tower.Close)

	// The shell joins the cgroup, then becomes the agent: every thread the
	// agent starts is limited from its first instruction.
	cmd := exec.Command("sh", "-c", `echo $$ > "$0" && exec "$@"`, procs,
		bin, "agent", "--tower", tower.URL, "--token", "tok", "--name", "sigterm-test",
		"--state-dir", t.TempDir(), "--kmsg", "-", "--journal", "no", "--interval", "1h")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})

	// Mid-scan: the agent holds a /proc/PID or /proc/PID/fd directory open.
	inScan := regexp.MustCompile(`^/proc/[0-9]+(/fd)?$`)
	fdDir := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/fd"
	deadline := time.Now().Add(60 * time.Second)
	for scanning := false; !scanning; {
		select {
		case err := <-exited:
			t.Fatalf("the agent exited before its scan: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent was never seen scanning /proc within 60 s\n%s", stderr.String())
		}
		ents, _ := os.ReadDir(fdDir)
		for _, e := range ents {
			if target, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && inScan.MatchString(target) {
				scanning = true
			}
		}
	}
	mu.Lock()
	before := kinds[wire.KindFindings]
	mu.Unlock()
	if before != 0 {
		t.Fatalf("the agent sent findings before its first scan ended: %v", kinds)
	}

	cpuBefore := cpuOf(cmd.Process.Pid)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not exit within 30 s of SIGTERM\n%s", stderr.String())
	}
	took := time.Since(sent)
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) - cpuBefore
	}
	t.Logf("exited %s after SIGTERM, using %s of CPU after it", took, cpu)
	if took > time.Second {
		t.Errorf("the agent exited %s after SIGTERM, mid-scan; want within 1 s\n%s", took, stderr.String())
	}
	if err != nil {
		t.Errorf("the agent's exit: %v\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if kinds[wire.KindFindings] != 0 {
		t.Errorf("the agent sent %d findings records from a pass cut short", kinds[wire.KindFindings])
	}
	if kinds[wire.KindStatus] == 0 {
		t.Errorf("the tower heard nothing from the agent (records %v): the test's tower is not the one it talks to", kinds)
	}
}

// cpuLimitedCgroup makes a CPU cgroup (v2, or v1's cpu hierarchy) limited
// to pct percent of one CPU and returns its cgroup.procs file. It is
// removed when the test ends.
func cpuLimitedCgroup(t *testing.T, pct int) string {
	t.Helper()
	name := fmt.Sprintf("hinomi-test-agent-%d", os.Getpid())
	quota, period := pct*1000, 100000
	var dir string
	var limits map[string]string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		// v2: the cpu controller must be on for the root's children.
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0o644)
		dir = filepath.Join("/sys/fs/cgroup", name)
		limits = map[string]string{"cpu.max": fmt.Sprintf("%d %d", quota, period)}
	} else {
		dir = filepath.Join("/sys/fs/cgroup/cpu", name)
		limits = map[string]string{"cpu.cfs_period_us": strconv.Itoa(period), "cpu.cfs_quota_us": strconv.Itoa(quota)}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		t.Skipf("no CPU cgroup to make: %v", err)
	}
	t.Cleanup(func() {
		// The agent has exited by now (cleanups run last-registered first).
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing cgroup %s: %v", dir, err)
		}
	})
	for _, f := range []string{"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.max"} {
		v, ok := limits[f]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Skipf("cannot limit the CPU of cgroup %s: %v", dir, err)
		}
	}
	return filepath.Join(dir, "cgroup.procs")
}

func buildHinomi(t *testing.T) string {
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
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer collects the agent's log for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// cpuOf is the CPU time pid has used so far (/proc/PID/stat's utime and
// stime, in ticks of 10 ms).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}
