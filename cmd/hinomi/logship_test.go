package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/tower"
)

// TestLogsShippedAcrossTowerKill runs a tower and an agent as real
// processes: lines written to a file the agent follows are found by
// `hinomi logs search` on the tower; the tower is killed (SIGKILL) while
// the agent writes, and restarted: every line is there exactly once. A
// `logs search --follow` started before the last lines prints each of
// them once.
func TestLogsShippedAcrossTowerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	dir := t.TempDir()
	addr := freePort(t)
	const token = "tok-logship-aaaaaaaaaaaa"
	cfgPath := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %s\napi_token: %s\ndata_dir: %s\nagents: [{name: loghost, token: %s}]\n",
		addr, testAPIToken, filepath.Join(dir, "tower"), token)), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "api_token")
	if err := os.WriteFile(tokenFile, []byte(testAPIToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	tw := start(t, "tower", "--config", cfgPath)
	tw.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)

	logFile := filepath.Join(dir, "app.log")
	if err := os.WriteFile(logFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "agent", "--tower", url, "--token", token, "--name", "loghost", "--state-dir", filepath.Join(dir, "agent"),
		"--interval", "500ms", "--kmsg", "-", "--journal", "no", "--container-logs", "no", "--log-file", logFile)
	waitHosts(t, url, 1, 30*time.Second)

	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var progress atomic.Int64
	write := func(n int, every time.Duration) {
		for range n {
			i := progress.Load()
			fmt.Fprintf(f, "payment %06d settled platypus\n", i)
			progress.Store(i + 1)
			if every > 0 && (i+1)%50 == 0 {
				time.Sleep(every) // the writer's pace, not a wait for state
			}
		}
	}
	search := func(args ...string) []tower.LogLine {
		t.Helper()
		out, err := exec.Command(hinomiBinary(t), append([]string{"logs", "search", "--tower", url, "--token-file", tokenFile, "--json"}, args...)...).Output()
		if err != nil && !strings.Contains(err.Error(), "exit status 1") {
			t.Fatalf("logs search %v: %v", args, err)
		}
		var lines []tower.LogLine
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l == "" {
				continue
			}
			var ll tower.LogLine
			if err := json.Unmarshal([]byte(l), &ll); err != nil {
				t.Fatalf("logs search printed %q: %v", l, err)
			}
			lines = append(lines, ll)
		}
		return lines
	}
	waitAll := func(n int) []tower.LogLine {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := search("platypus", "--host", "loghost", "--limit", "100000")
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	write(500, 20*time.Millisecond)
	if got := waitAll(500); len(got) != 500 {
		t.Fatalf("%d lines found before the kill; want the 500 written", len(got))
	}
	// Kill the tower in the middle of a stream of lines; the agent keeps
	// writing into its spool meanwhile.
	done := make(chan struct{})
	go func() {
		defer close(done)
		write(2000, 5*time.Millisecond)
	}()
	for deadline := time.Now().Add(30 * time.Second); progress.Load() < 1000 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	tw.kill(t)
	<-done
	written := int(progress.Load())
	tw = start(t, "tower", "--config", cfgPath)
	tw.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	got := waitAll(written)
	count := map[string]int{}
	for _, l := range got {
		count[l.Line]++
		if l.Source != "file:"+logFile || l.Host != "loghost" {
			t.Fatalf("line %+v: want host loghost and source file:%s", l, logFile)
		}
	}
	for i := range written {
		if n := count[fmt.Sprintf("payment %06d settled platypus", i)]; n != 1 {
			t.Fatalf("line %d found %d times after the kill and restart; want once (%d lines found of %d written)", i, n, len(got), written)
		}
	}

	// On the tower's host its config says where it is and its token.
	viaConfig, err := exec.Command(hinomiBinary(t), "logs", "search", "--config", cfgPath, "--limit", "5", "platypus").Output()
	if n := strings.Count(string(viaConfig), "platypus"); err != nil || n != 5 {
		t.Errorf("logs search --config: %v, %d lines; want 5:\n%s", err, n, viaConfig)
	}

	// --follow prints what is stored after it started, each line once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, hinomiBinary(t), "logs", "search", "--tower", url, "--token-file", tokenFile, "--limit", "1", "--follow", "echidna")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// It says when it follows: lines written from then on are new to it.
	following := bufio.NewScanner(errOut)
	if !following.Scan() || !strings.Contains(following.Text(), "following") {
		t.Fatalf("logs search --follow said %q; want that it follows", following.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, errOut) }()
	for i := range 300 {
		fmt.Fprintf(f, "echidna %04d\n", i)
	}
	followed := map[string]int{}
	deadline := time.After(60 * time.Second)
	for len(followed) < 300 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("follow ended after %d lines", len(followed))
			}
			_, text, _ := strings.Cut(l, ": ")
			followed[text]++
		case <-deadline:
			t.Fatalf("follow printed %d of 300 lines", len(followed))
		}
	}
	cancel()
	for l := range lines {
		_, text, _ := strings.Cut(l, ": ")
		followed[text]++
	}
	for text, n := range followed {
		if n != 1 || !strings.HasPrefix(text, "echidna ") {
			t.Errorf("follow printed %q %d times", text, n)
		}
	}
}
