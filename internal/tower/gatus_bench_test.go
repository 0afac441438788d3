package tower

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/hinomi/hinomi/internal/importer"
)

// The side by side with Gatus: the same 1,000 HTTP endpoints on
// 127.0.0.1, checked at the same time by a whole hinomi tower (its
// configuration imported from Gatus's, as `hinomi import gatus` does) and
// by Gatus, each against a target server in a process of its own that
// notes when every request arrived. Both are judged by the same
// instrument over the same minute, so that the machine's other load
// weighs on both alike: per endpoint, the arrivals against the
// endpoint's own best fixed-rate schedule (the earliest phase its runs
// allow), so each run's lateness is how much later than that schedule it
// came, and a slot of that schedule without a run is a skipped run.

const (
	// gatusEnv names the Gatus binary (scripts/gatus builds one).
	gatusEnv = "HINOMI_GATUS"
	// gatusTargetEnv makes the test binary the target server (TestMain).
	gatusTargetEnv = "HINOMI_GATUS_BENCH_TARGET"
	// gatusSecondsEnv changes the window each endpoint is watched for.
	gatusSecondsEnv = "HINOMI_GATUS_BENCH_SECONDS"
)

func TestMain(m *testing.M) {
	if os.Getenv(gatusTargetEnv) == "1" {
		os.Exit(serveTarget())
	}
	os.Exit(m.Run())
}

// serveTarget serves /e/N, noting each request's arrival (Unix ns, so
// that the benchmark's process can place them in its window) under N; it
// prints its address, and when its standard input closes, the arrivals as
// JSON, then exits.
func serveTarget() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	arrivals := map[int][]int64{}
	page := `{"status":"up","message":"Welcome to the shop","data":[{"name":"web-1","healthy":true}],"padding":"` +
		strings.Repeat("x", 2000) + `"}`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now().UnixNano()
		if n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/e/")); err == nil {
			mu.Lock()
			arrivals[n] = append(arrivals[n], at)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, page)
	}), ReadHeaderTimeout: 5 * time.Second}
	fmt.Println(l.Addr())
	go func() { _ = srv.Serve(l) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	mu.Lock()
	defer mu.Unlock()
	if err := json.NewEncoder(os.Stdout).Encode(arrivals); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// target is a running target server.
type target struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	addr  string
}

func startTarget(b *testing.B) *target {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), gatusTargetEnv+"=1")
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
	tg := &target{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := tg.out.ReadString('\n')
	if err != nil {
		b.Fatalf("the target server did not start: %v", err)
	}
	tg.addr = strings.TrimSpace(addr)
	return tg
}

// stop ends the server and returns its arrivals by endpoint.
func (tg *target) stop(b *testing.B) map[int][]int64 {
	_ = tg.stdin.Close()
	var arrivals map[int][]int64
	if err := json.NewDecoder(tg.out).Decode(&arrivals); err != nil {
		b.Fatalf("reading the target's arrivals: %v", err)
	}
	_ = tg.cmd.Wait()
	return arrivals
}

// punctuality is what the arrivals say of one checker.
type punctuality struct {
	endpoints       int // endpoints heard from
	runs, skipped   int
	p50, p99, worst time.Duration
	// allChecked is when the last endpoint was first checked, after the
	// first endpoint was.
	allChecked time.Duration
}

// judge measures each endpoint's arrivals within [from, to) against its
// best fixed-rate schedule of interval: the slots of that schedule from
// from to half an interval before to (a run a little late for the last
// one still comes before to) are the runs due.
func judge(arrivals map[int][]int64, interval time.Duration, from, to time.Time) punctuality {
	var p punctuality
	var late []int64
	iv, lo, hi := interval.Nanoseconds(), from.UnixNano(), to.UnixNano()
	first, last := int64(math.MaxInt64), int64(0)
	for _, as := range arrivals {
		if len(as) == 0 {
			continue
		}
		slices.Sort(as)
		p.endpoints++
		first, last = min(first, as[0]), max(last, as[0])
		var in []int64
		for _, a := range as {
			if a >= lo && a < hi {
				in = append(in, a)
			}
		}
		if len(in) == 0 {
			p.skipped += int((hi - lo) / iv)
			continue
		}
		ks := make([]int64, len(in))
		origin := int64(math.MaxInt64)
		for i, a := range in {
			ks[i] = int64(math.Round(float64(a-in[0]) / float64(iv)))
			origin = min(origin, a-ks[i]*iv)
		}
		kmin := ceilDiv(lo-origin, iv)
		kmax := ceilDiv(hi-iv/2-origin, iv) - 1
		seen := map[int64]bool{}
		for i, a := range in {
			late = append(late, a-ks[i]*iv-origin)
			if ks[i] >= kmin && ks[i] <= kmax {
				seen[ks[i]] = true
			}
		}
		p.runs += len(in)
		p.skipped += int(kmax-kmin+1) - len(seen)
	}
	if len(late) == 0 {
		return p
	}
	slices.Sort(late)
	p.p50 = time.Duration(late[len(late)/2])
	p.p99 = time.Duration(late[len(late)*99/100])
	p.worst = time.Duration(late[len(late)-1])
	p.allChecked = time.Duration(last - first)
	return p
}

// ceilDiv is a/b rounded up, for b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}

// cpuSeconds is a process's CPU time so far.
func cpuSeconds(b *testing.B, pid int) float64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return st.CPUTime()
}

// BenchmarkGatusSideBySide runs Gatus and a hinomi tower at the same
// time on the same 1,000 HTTP endpoints (each its own target server)
// checked every 6 s (10,000 runs a minute), watches both over the same
// 60 s once every endpoint of both runs (HINOMI_GATUS_BENCH_SECONDS
// changes that), and prints each one's lateness p50/p99, skipped runs,
// CPU and the ratio; then the status page of 500 services × 90 days of
// history read back from the store. Gatus starts its endpoints 222 ms
// apart, so the run waits 222 s for it before the window.
//
//	scripts/gatus /path/to/gatus-source /tmp/gatus
//	HINOMI_GATUS=/tmp/gatus go test -run '^$' -bench GatusSideBySide -benchtime 1x -timeout 30m ./internal/tower
func BenchmarkGatusSideBySide(b *testing.B) {
	bin := os.Getenv(gatusEnv)
	if bin == "" {
		b.Skipf("%s is not set: the side by side needs a Gatus binary (build one with scripts/gatus SOURCE-DIR OUT, then %s=OUT)", gatusEnv, gatusEnv)
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skipf("%s=%s: %v (build one with scripts/gatus SOURCE-DIR OUT)", gatusEnv, bin, err)
	}
	const endpoints, interval = 1000, 6 * time.Second
	window := 60 * time.Second
	if s := os.Getenv(gatusSecondsEnv); s != "" {
		d, err := time.ParseDuration(s + "s")
		if err != nil || d < 2*interval {
			b.Fatalf("%s=%s: want a number of seconds, at least %s", gatusSecondsEnv, s, 2*interval)
		}
		window = d
	}
	for range b.N {
		dir := b.TempDir()
		// Gatus first: it takes 222 ms an endpoint to start them all.
		tgG := startTarget(b)
		g := startGatus(b, bin, dir, tgG, endpoints, interval)
		ramp := time.Duration(endpoints)*222*time.Millisecond + interval + 2*time.Second
		hinomiAt := ramp - interval - 2*time.Second
		g.wait(b, hinomiAt)
		tgH := startTarget(b)
		h := startHinomi(b, dir, tgH, endpoints, interval)
		g.wait(b, interval+2*time.Second)
		h.wait(b, 0)
		from := time.Now()
		cpuG0, cpuH0 := cpuSeconds(b, g.pid), cpuSeconds(b, os.Getpid())
		g.wait(b, window)
		h.wait(b, 0)
		to := time.Now()
		cpuG := 100 * (cpuSeconds(b, g.pid) - cpuG0) / to.Sub(from).Seconds()
		cpuH := 100 * (cpuSeconds(b, os.Getpid()) - cpuH0) / to.Sub(from).Seconds()
		gNote := g.stop(b)
		hNote := h.stop(b)
		gs := benchSide{name: "Gatus", punctuality: judge(tgG.stop(b), interval, from, to), cpu: cpuG, note: gNote}
		hs := benchSide{name: "hinomi", punctuality: judge(tgH.stop(b), interval, from, to), cpu: cpuH, note: hNote}

		n := 0
		_, p95, page := statusPageFigures(b, func() bool { n++; return n <= 200 })

		ratio := float64(gs.p99) / float64(max(hs.p99, time.Microsecond))
		b.ReportMetric(float64(hs.p99.Microseconds())/1000, "hinomi-late-p99-ms")
		b.ReportMetric(float64(gs.p99.Microseconds())/1000, "gatus-late-p99-ms")
		b.ReportMetric(ratio, "gatus/hinomi-p99")
		b.ReportMetric(float64(hs.skipped), "hinomi-skipped")
		b.ReportMetric(float64(gs.skipped), "gatus-skipped")
		b.ReportMetric(hs.cpu, "hinomi-cpu-%")
		b.ReportMetric(gs.cpu, "gatus-cpu-%")
		b.ReportMetric(float64(p95.Microseconds())/1000, "page-p95-ms")
		for _, r := range []benchSide{hs, gs} {
			b.Logf("%-6s %d endpoints every %s, the same %s watched: %d runs, %d skipped; lateness p50 %s, p99 %s, worst %s; every endpoint first checked within %s of the first; CPU %.1f%% of one core%s",
				r.name, r.endpoints, interval, to.Sub(from).Round(time.Second), r.runs, r.skipped, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
				r.worst.Round(10*time.Microsecond), r.allChecked.Round(time.Millisecond), r.cpu, r.note)
		}
		b.Logf("lateness p99: Gatus %s, hinomi %s (Gatus/hinomi %.1f×)", gs.p99.Round(10*time.Microsecond), hs.p99.Round(10*time.Microsecond), ratio)
		b.Logf("status page: %s", page)
		if load, err := os.ReadFile("/proc/loadavg"); err == nil {
			b.Logf("load average at the end (1, 5, 15 min): %s", strings.Join(strings.Fields(string(load))[:3], " "))
		}
		if hs.endpoints != endpoints || gs.endpoints != endpoints {
			b.Errorf("endpoints heard from: hinomi %d, Gatus %d; want %d each", hs.endpoints, gs.endpoints, endpoints)
		}
		if hs.skipped != 0 || hs.p99 >= gs.p99 {
			b.Errorf("hinomi: %d skipped, lateness p99 %s against Gatus's %s; want none skipped and p99 below Gatus's", hs.skipped, hs.p99, gs.p99)
		}
		if p95 >= 100*time.Millisecond {
			b.Logf("the page's p95 %s is over its 100 ms target (a loaded machine shows in it: see the load average)", p95)
		}
	}
}

type benchSide struct {
	name string
	punctuality
	cpu  float64
	note string
}

// gatusConfig is Gatus's configuration of the endpoints (and its web
// server on 127.0.0.1): the conditions a Gatus user writes for a JSON
// health page, which hinomi takes unchanged.
func gatusConfig(addr string, endpoints int, interval time.Duration, webPort int) []byte {
	var c strings.Builder
	fmt.Fprintf(&c, "web:\n  address: 127.0.0.1\n  port: %d\nendpoints:\n", webPort)
	for i := range endpoints {
		fmt.Fprintf(&c, `  - name: web-%04d
    group: shop
    url: "http://%s/e/%d"
    interval: %s
    client:
      timeout: 5s
    conditions:
      - "[STATUS] == 200"
      - "[BODY].status == up"
      - "[BODY].data[0].name == web-1"
      - "[BODY] == pat(*Welcome to the shop*)"
      - "[RESPONSE_TIME] < 1000"
`, i, addr, i, interval)
	}
	return []byte(c.String())
}

// checker is a running side: wait lets it run (failing the benchmark if
// it stops), stop ends it and says what to add to its line.
type checker struct {
	pid     int
	stopped <-chan error
	stop    func(b *testing.B) string
}

func (c checker) wait(b *testing.B, d time.Duration) {
	select {
	case err := <-c.stopped:
		b.Fatalf("a checker stopped: %v", err)
	case <-time.After(d):
	}
}

// startHinomi runs a whole tower in this process on the configuration
// imported from Gatus's.
func startHinomi(b *testing.B, dir string, tg *target, endpoints int, interval time.Duration) checker {
	r, err := importer.Gatus(gatusConfig(tg.addr, endpoints, interval, 1))
	if err != nil {
		b.Fatal(err)
	}
	if len(r.Skipped) != 0 || len(r.Config.Probes) != endpoints {
		b.Fatalf("the import left out %v; %d probes", r.Skipped, len(r.Config.Probes))
	}
	r.Config.Listen, r.Config.DataDir = "127.0.0.1:0", filepath.Join(dir, "tower")
	text, err := r.YAML("gatus.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig(text, "imported.yaml")
	if err != nil {
		b.Fatalf("the imported configuration: %v", err)
	}
	// The collector and the time slices as `hinomi tower` sets them.
	b.Cleanup(TuneRuntime())
	tw, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tw.Run(ctx) }()
	return checker{pid: os.Getpid(), stopped: done, stop: func(b *testing.B) string {
		stats := tw.probeScheduler().Stats()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("the tower: %v", err)
		}
		return fmt.Sprintf(" (the whole tower, in the benchmark's process); its scheduler's own count over its run: %d runs, %d skipped, lateness p99 ≤ %s",
			stats.Runs, stats.Skipped, stats.LatenessP99.Round(10*time.Microsecond))
	}}
}

// startGatus runs Gatus on its configuration, its web server on a free
// port of 127.0.0.1.
func startGatus(b *testing.B, bin, dir string, tg *target, endpoints int, interval time.Duration) checker {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	path := filepath.Join(dir, "gatus.yaml")
	if err := os.WriteFile(path, gatusConfig(tg.addr, endpoints, interval, port), 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "gatus.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GATUS_CONFIG_PATH="+path, "GATUS_LOG_LEVEL=WARN")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() { _ = cmd.Process.Kill(); logf.Close() })
	return checker{pid: cmd.Process.Pid, stopped: exited, stop: func(b *testing.B) string {
		var rss string
		if p, err := procfs.NewProc(cmd.Process.Pid); err == nil {
			if st, err := p.NewStatus(); err == nil {
				rss = fmt.Sprintf("; peak RSS %.0f MiB", float64(st.VmHWM)/(1<<20))
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return rss + " (its default concurrency: 3 checks at once)"
	}}
}

// The side by side's instrument: runs are judged against the endpoint's
// own best fixed-rate schedule; a slot without a run is skipped.
func TestJudgeArrivals(t *testing.T) {
	ms := func(v ...int64) []int64 {
		for i := range v {
			v[i] *= 1e6
		}
		return v
	}
	// The window is [1 s, 6.2 s): slots up to 5.7 s are due.
	from, to := time.Unix(0, 1e9), time.Unix(0, 6200*1e6)
	p := judge(map[int][]int64{
		// Every second, the third run 30 ms late, the fifth slot empty,
		// the one at 7 s after the window; the one at 0 s before it.
		1: ms(0, 1000, 2000, 3030, 4000, 6000, 7000),
		// Started 400 ms after endpoint 1; its first run 10 ms late, so
		// its schedule's origin is 10 ms before it; it stops after 3.4 s
		// (two slots skipped: 4.4 and 5.4 s).
		2: ms(400, 1410, 2400, 3400),
		// Heard from before the window only: all five slots skipped.
		3: ms(100),
	}, time.Second, from, to)
	if p.endpoints != 3 || p.runs != 8 || p.skipped != 1+2+5 {
		t.Errorf("endpoints %d, runs %d, skipped %d; want 3, 8, 8", p.endpoints, p.runs, p.skipped)
	}
	if p.worst != 30*time.Millisecond || p.p50 != 0 || p.allChecked != 400*time.Millisecond {
		t.Errorf("worst %s, p50 %s, all checked within %s; want 30ms, 0s, 400ms", p.worst, p.p50, p.allChecked)
	}
}
