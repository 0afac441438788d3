package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// benchServerEnv makes the test binary a tiny HTTP server (see TestMain), so that the
// benchmark measures the scheduler's process alone.
const benchServerEnv = "HINOMI_PROBE_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) == "1" {
		os.Exit(serveBench())
	}
	os.Exit(m.Run())
}

// serveBench prints its address and serves until its stdin closes.
func serveBench() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	page := `{"status":"up","message":"Welcome to the shop","data":[{"name":"web-1","healthy":true}],"padding":"` +
		strings.Repeat("x", 2000) + `"}`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, page)
	}), ReadHeaderTimeout: 5 * time.Second}
	fmt.Println(l.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = srv.Close()
	}()
	_ = srv.Serve(l)
	return 0
}

// BenchmarkScheduler10kPerMinute runs 170 HTTP probes at 1s against a server in another
// process for 30s (HINOMI_PROBE_BENCH_SECONDS changes that), each judging a body text and a
// JSON field. Run it with: go test -run '^$' -bench Scheduler10k -benchtime 1x ./internal/probe/
func BenchmarkScheduler10kPerMinute(b *testing.B) {
	const probes = 170
	dur := 30 * time.Second
	if s := os.Getenv("HINOMI_PROBE_BENCH_SECONDS"); s != "" {
		d, err := time.ParseDuration(s + "s")
		if err != nil {
			b.Fatal(err)
		}
		dur = d
	}
	for range b.N {
		benchOnce(b, probes, dur)
	}
}

func benchOnce(b *testing.B, probes int, dur time.Duration) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("server did not start: %v", err)
	}
	addr = strings.TrimSpace(addr)

	specs := make([]Spec, probes)
	for i := range specs {
		specs[i] = Spec{Name: fmt.Sprintf("web-%03d", i), Type: HTTP, Interval: time.Second, Timeout: 900 * time.Millisecond,
			Target: fmt.Sprintf("http://%s/health/%d", addr, i),
			Conditions: []string{"[STATUS] == 200", `[BODY] contains "Welcome"`, "[BODY].data[0].name == web-1",
				`[BODY] not contains "Something went wrong"`}}
	}
	var notUp atomic.Int64
	var firstBad atomic.Value
	sched := NewScheduler(SchedulerConfig{Deliver: func(d Delivery) {
		if d.Result.Status != Up {
			notUp.Add(1)
			firstBad.CompareAndSwap(nil, fmt.Sprintf("%s: %s %s %q", d.Spec.Name, d.Result.Status, d.Result.Error, d.Result.Failed))
		}
	}})
	if err := sched.Update(specs); err != nil {
		b.Fatal(err)
	}
	self, err := procfs.Self()
	if err != nil {
		b.Fatal(err)
	}
	server, err := procfs.NewProc(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	cpu := func(p procfs.Proc) float64 {
		st, err := p.Stat()
		if err != nil {
			b.Fatal(err)
		}
		return st.CPUTime()
	}
	cpu0, srvCPU0 := cpu(self), cpu(server)

	b.ResetTimer()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	if err := sched.Run(ctx); err != nil {
		b.Fatal(err)
	}
	wall := time.Since(start)
	b.StopTimer()

	st := sched.Stats()
	status, err := self.NewStatus()
	if err != nil {
		b.Fatal(err)
	}
	cpuPct := 100 * (cpu(self) - cpu0) / wall.Seconds()
	srvPct := 100 * (cpu(server) - srvCPU0) / wall.Seconds()
	perMin := float64(st.Runs) / wall.Minutes()
	b.ReportMetric(perMin, "runs/min")
	b.ReportMetric(float64(st.Skipped), "skipped")
	b.ReportMetric(float64(st.LatenessP50)/1e6, "late-p50-ms")
	b.ReportMetric(float64(st.LatenessP99)/1e6, "late-p99-ms")
	b.ReportMetric(cpuPct, "cpu-%")
	b.ReportMetric(srvPct, "server-cpu-%")
	b.ReportMetric(float64(status.VmHWM)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(notUp.Load()), "not-up")
	b.Logf("%d probes at 1s for %s: %d runs (%.0f/min), %d skipped, lateness p50 ≤ %s p99 ≤ %s; "+
		"scheduler process CPU %.1f%% of one core, peak RSS %.1f MiB; server process CPU %.1f%%; %d results not up",
		len(specs), wall.Round(time.Millisecond), st.Runs, perMin, st.Skipped, st.LatenessP50, st.LatenessP99,
		cpuPct, float64(status.VmHWM)/(1<<20), srvPct, notUp.Load())
	if st.Skipped != 0 || st.LatenessP99 >= time.Second {
		b.Errorf("skipped %d, lateness p99 %s; want 0 skipped and p99 under 1s", st.Skipped, st.LatenessP99)
	}
	if n := notUp.Load(); n != 0 {
		b.Errorf("%d results not up against a healthy server, e.g. %v", n, firstBad.Load())
	}
}
