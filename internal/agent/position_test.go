package agent

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

const positionChildEnv = "HINOMI_TEST_POSITION_FILE"

// TestPositionWriterChild is the child of TestPositionSurvivesKill9: it
// goes on from the kernel log position it finds, writing each next one
// the way watchKernel does after a spooled line, until it is killed
// (bounded: a million writes).
func TestPositionWriterChild(t *testing.T) {
	file := os.Getenv(positionChildEnv)
	if file == "" {
		t.Skip("the child of TestPositionSurvivesKill9")
	}
	seq := kmsgPosition(file, "boot-a")
	pos := &positionWriter{file: file}
	fail := func(err error) { fmt.Fprintln(os.Stderr, err); os.Exit(3) }
	for i := range 1_000_000 {
		pos.set(fmt.Appendf(nil, "%s %d\n", "boot-a", seq), true, time.Now(), fail)
		seq++
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

// TestPositionSurvivesKill9 kills an agent's position writer with SIGKILL
// at random points: every time, the file holds a whole position at or past
// the one before (never empty, which would re-send the kernel's whole ring
// buffer).
func TestPositionSurvivesKill9(t *testing.T) {
	if os.Getenv(positionChildEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsg-seq")
	whole := regexp.MustCompile(`^boot-a \d+\n$`)
	var last uint64
	for round := range 30 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPositionWriterChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), positionChildEnv+"="+file)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ok := sc.Scan() && sc.Text() == "ready"
			ready <- ok
			for sc.Scan() {
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("round %d: the child did not start writing", round)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: the child did not start writing within 30s", round)
		}
		// The kill point: a random moment in the child's write loop.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !whole.Match(b) {
			t.Fatalf("round %d: after kill -9 the position file holds %q, want a whole position", round, b)
		}
		next := kmsgPosition(file, "boot-a")
		if next < last {
			t.Fatalf("round %d: the position went back from %d to %d", round, last, next)
		}
		last = next
	}
}
