// Package testload gives hinomi's tests and benchmarks a real load to
// diagnose: it builds and starts the hinomi-testload program
// (./cmd/hinomi-testload), which creates inotify watches, open files, threads
// and child processes and holds them, either as a plain child process (Start)
// or as the main process of a Docker container made from a FROM scratch
// image (ScratchImage, RunContainer).
//
// The package uses only the standard library and the Docker client library;
// it must not import hinomi's product packages.
package testload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ProgramName is the file name of the built test-load program, and its path
// inside the image made by ScratchImage is "/" + ProgramName.
const ProgramName = "hinomi-testload"

// programPackage is the program's package path relative to the module root.
const programPackage = "./internal/testload/cmd/hinomi-testload"

// ReadyTimeout bounds how long Start and RunContainer wait for the ready
// line. Creating many thousands of watches or children on a loaded 2-core
// machine under -race takes seconds, not minutes.
const ReadyTimeout = 60 * time.Second

// stopTimeout bounds how long Stop waits for the program to exit after its
// standard input is closed before it is killed.
const stopTimeout = 30 * time.Second

var program struct {
	once sync.Once
	dir  string // temporary directory holding the binary; removed by RemoveBuild
	path string
	err  error
}

// Build builds the test-load program once per test binary (CGO_ENABLED=0, so
// the result is static and runs in a FROM scratch image) and returns the path
// of the executable. The binary lives in a temporary directory that outlives
// the calling test, so that later tests reuse it; a TestMain may remove it
// with RemoveBuild.
//
// It works from the tests of any package of the module: the module root is
// found by walking up from the working directory to go.mod.
func Build(t testing.TB) string {
	t.Helper()
	program.once.Do(func() {
		program.path, program.err = buildProgram()
	})
	if program.err != nil {
		t.Fatalf("testload: building %s: %v", ProgramName, program.err)
	}
	return program.path
}

// RemoveBuild removes the directory holding the binary made by Build, if any.
// Call it from TestMain after m.Run; later calls of Build in the same process
// fail.
func RemoveBuild() {
	// Do the once, so that a concurrent or later Build cannot build anew.
	program.once.Do(func() { program.err = errors.New("RemoveBuild was called before Build") })
	if program.dir != "" {
		_ = os.RemoveAll(program.dir)
		program.dir = ""
		program.err = errors.New("the build was removed by RemoveBuild")
	}
}

func buildProgram() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "hinomi-testload-build-")
	if err != nil {
		return "", err
	}
	program.dir = dir
	// Other users must be able to run it (StartAs).
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, ProgramName)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, programPackage)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %w\n%s", root, err, msg)
	}
	return out, nil
}

// ModuleRoot returns the directory of the nearest go.mod at or above the
// working directory.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod at or above %s", wd)
		}
		dir = parent
	}
}

// Proc is a running test-load program started by Start.
type Proc struct {
	// PID is the process id, as printed on the ready line (and equal to
	// Cmd.Process.Pid).
	PID int
	// Cmd is the running command. Do not call Cmd.Wait: use Stop.
	Cmd *exec.Cmd
	// Ready is the ready line the program printed, without the newline.
	Ready string

	stdin    io.WriteCloser
	stderr   *syncBuffer
	drained  chan struct{} // closed when stdout reached EOF
	stopOnce sync.Once
	stopErr  error
	stopped  bool
}

// Start builds (see Build) and starts the test-load program with args (for
// example "-watches", "100", "-children", "2"), and waits, for at most
// ReadyTimeout, until it prints its ready line, so that every resource it was
// asked for exists when Start returns.
//
// When the test ends, the program is stopped (see Stop) and, unless the test
// called Stop itself, the test fails if the program did not exit cleanly.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return start(t, -1, "", args)
}

// StartAs is Start with the program running as uid (and gid uid), so that
// its inotify watches and instances are charged to a budget of its own.
func StartAs(t testing.TB, uid int, args ...string) *Proc {
	t.Helper()
	return start(t, uid, "", args)
}

// StartInCgroup is Start with the program running, from its first
// instruction, in the cgroup whose directory is cgroupDir (for example
// /sys/fs/cgroup/pids/NAME on cgroup v1): a shell writes its own pid into
// cgroup.procs and then becomes the program, so everything the program
// creates is charged to that cgroup. It needs the right to write there.
func StartInCgroup(t testing.TB, cgroupDir string, args ...string) *Proc {
	t.Helper()
	return start(t, -1, cgroupDir, args)
}

func start(t testing.TB, uid int, cgroupDir string, args []string) *Proc {
	t.Helper()
	path := Build(t)

	cmd := exec.Command(path, args...)
	if cgroupDir != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cgroupDir, path}, args...)...)
	}
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("testload: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testload: %v", err)
	}
	p := &Proc{Cmd: cmd, stdin: stdin, stderr: &syncBuffer{}, drained: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testload: starting %s: %v", path, err)
	}

	// Read the first line, then drain stdout to EOF, so that Wait (which
	// closes the pipe) only runs after all reads are done.
	lines := make(chan string, 1)
	go func() {
		defer close(p.drained)
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err == nil {
			lines <- strings.TrimSuffix(line, "\n")
		}
		close(lines)
		_, _ = io.Copy(io.Discard, r)
	}()

	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-lines:
		if !ok {
			err := p.stop()
			t.Fatalf("testload: %s %q exited before its ready line: %v; stderr:\n%s", ProgramName, args, err, p.stderr)
		}
		pid, err := ParseReady(line)
		if err != nil {
			_ = p.kill()
			t.Fatalf("testload: %v; stderr:\n%s", err, p.stderr)
		}
		if pid != cmd.Process.Pid {
			_ = p.kill()
			t.Fatalf("testload: ready line %q names pid %d, but the process is %d", line, pid, cmd.Process.Pid)
		}
		p.PID = pid
		p.Ready = line
	case <-timer.C:
		_ = p.kill()
		t.Fatalf("testload: %s %q printed no ready line within %v; stderr:\n%s", ProgramName, args, ReadyTimeout, p.stderr)
	}

	t.Cleanup(func() {
		if p.stopped {
			return
		}
		if err := p.Stop(); err != nil {
			t.Errorf("testload: %s (pid %d) did not exit cleanly: %v; stderr:\n%s", ProgramName, p.PID, err, p.stderr)
		}
	})
	return p
}

// Stop ends the program the way a test run ends it: it closes its standard
// input, which makes it release everything (its children die with it) and
// exit, and waits for it. If it has not exited within 30 seconds it is
// killed. Stop returns the exit error (nil for a clean exit 0); calling it
// again returns the same result. A test that kills the program itself should
// call Stop and ignore the error.
func (p *Proc) Stop() error {
	p.stopped = true
	return p.stop()
}

func (p *Proc) stop() error {
	p.stopOnce.Do(func() {
		_ = p.stdin.Close()
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.drained:
		case <-timer.C:
			_ = p.Cmd.Process.Kill()
			<-p.drained
		}
		p.stopErr = p.Cmd.Wait()
		if err, ok := p.stopErr.(*exec.ExitError); ok && len(p.stderr.String()) > 0 {
			p.stopErr = fmt.Errorf("%w: %s", err, strings.TrimSpace(p.stderr.String()))
		}
	})
	return p.stopErr
}

func (p *Proc) kill() error {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	p.stopped = true
	return p.stop()
}

// Stderr returns what the program has written to its standard error so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// ParseReady parses the program's ready line
//
//	ready pid=<pid> watches=<N> instances=<K> files=<M> children=<C>
//
// and returns the pid it names.
func ParseReady(line string) (int, error) {
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "ready" || !strings.HasPrefix(fields[1], "pid=") {
		return 0, fmt.Errorf("not a ready line: %q", line)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(fields[1], "pid="))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid in ready line %q", line)
	}
	return pid, nil
}

// syncBuffer is a bytes.Buffer safe for one writer (exec's copying goroutine)
// and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
