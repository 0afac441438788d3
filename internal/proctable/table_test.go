package proctable

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/testload"
)

func TestScanCountsExactly(t *testing.T) {
	const watches, instances, files, children = 250, 4, 120, 3
	p := testload.Start(t, "-watches", "250", "-instances", "4", "-files", "120", "-children", "3")
	tb, err := Scan(host.Live())
	if err != nil {
		t.Fatal(err)
	}
	me := tb.ByPID(p.PID)
	if me == nil {
		t.Fatalf("pid %d not in the table", p.PID)
	}
	if me.Comm != "hinomi-testload" || me.InotifyWatches != watches || me.InotifyInstances != instances {
		t.Errorf("got comm %q, %d watches in %d instances; want hinomi-testload, %d in %d", me.Comm, me.InotifyWatches, me.InotifyInstances, watches, instances)
	}
	if me.FDs < files+instances {
		t.Errorf("%d fds, want at least %d", me.FDs, files+instances)
	}
	if me.NofileSoft == 0 {
		t.Error("RLIMIT_NOFILE not read for a process with many descriptors")
	}
	kids := 0
	for _, q := range tb.Procs {
		if q.PPID == p.PID {
			kids++
		}
	}
	if kids != children {
		t.Errorf("%d children in the table, want %d", kids, children)
	}
	if tb.Boot.IsZero() {
		t.Error("boot time not read")
	}
	if me.Started.Before(tb.Boot) {
		t.Errorf("process started %v, before boot %v", me.Started, tb.Boot)
	}
}

func TestRedactArgs(t *testing.T) {
	got := RedactArgs([]string{"mysql", "-uroot", "-pS3cret", "--password=x", "--api-token", "abc", "--port", "3306", "-v"})
	want := []string{"mysql", "-uroot", "-p<redacted>", "--password=<redacted>", "--api-token", "<redacted>", "--port", "3306", "-v"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseCrictlPS(t *testing.T) {
	in := `{"containers":[{"id":"5c1f","metadata":{"name":"coredns"},"labels":{"io.kubernetes.pod.name":"coredns-abc","io.kubernetes.pod.namespace":"kube-system"}}]}`
	cs, err := ParseCrictlPS([]byte(in))
	if err != nil || len(cs) != 1 || cs[0].Pod != "kube-system/coredns-abc" || cs[0].Name != "coredns" {
		t.Errorf("got %+v, %v", cs, err)
	}
	if _, err := ParseCrictlPS([]byte("{truncated")); err == nil || !strings.Contains(err.Error(), "crictl") {
		t.Errorf("truncated output: %v", err)
	}
}

func FuzzCountInotifyWatches(f *testing.F) {
	f.Add([]byte("pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\ninotify wd:1 ino:2 sdev:fd00001 mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0200000000000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := CountInotifyWatches(b); n < 0 || n > len(b)/len("inotify wd:") {
			t.Errorf("%d watches in %d bytes", n, len(b))
		}
	})
}

func FuzzRedactArgs(f *testing.F) {
	f.Add("mysql\x00-pS3cret\x00--token\x00abc")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		got := RedactArgs(args)
		if len(got) != len(args) || (len(args) > 0 && got[0] != args[0]) {
			t.Errorf("RedactArgs(%q) = %q", args, got)
		}
	})
}

func FuzzParseCrictlPS(f *testing.F) {
	f.Add([]byte(`{"containers":[{"id":"a","metadata":{"name":"n"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseCrictlPS(b) })
}

// TestScanWhileProcessesExit scans while short-lived processes start and
// exit: vanished processes are left out, never an error.
func TestScanWhileProcessesExit(t *testing.T) {
	done := make(chan struct{})
	churned := make(chan int)
	go func() {
		n := 0
		defer func() { churned <- n }()
		for n < 2000 {
			select {
			case <-done:
				return
			default:
			}
			if err := exec.Command("true").Run(); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	for range 20 {
		tb, err := Scan(host.Live())
		if err != nil {
			t.Fatalf("scan during process churn: %v", err)
		}
		for _, p := range tb.Procs {
			if p.Comm == "" || p.PID <= 0 {
				t.Fatalf("half-read process %+v", p)
			}
		}
	}
	close(done)
	if n := <-churned; n == 0 {
		t.Error("no process was started during the scans")
	}
}
