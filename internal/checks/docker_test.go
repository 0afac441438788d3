package checks

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/runbook"
	"github.com/hinomi/hinomi/internal/testload"
)

// uniqueName names a test container so that runs of other checkouts at the
// same time never share it.
func uniqueName(what string) string {
	return fmt.Sprintf("hinomi-test-%s-%d", what, os.Getpid())
}

func liveDockerEnv(t *testing.T) *Env {
	t.Helper()
	env := &Env{Src: host.Live(), Host: "test", Now: time.Now(), Log: slog.New(slog.DiscardHandler)}
	// The kernel log, as doctor and the agent give it to the checks.
	if st, err := os.ReadFile("/proc/stat"); err == nil {
		env.Kernel = ReadKernelLog(env.Src, proctable.BootTime(st), 5000)
	}
	return env
}

// findingFor returns the finding about subject, failing the test without.
func findingFor(t *testing.T, res Result, subject string) finding.Finding {
	t.Helper()
	var got []string
	for _, f := range res.Findings {
		if f.Subject == subject {
			return f
		}
		got = append(got, f.Subject)
	}
	t.Fatalf("no finding about %q; got %q (blind: %q)", subject, got, res.Blind)
	return finding.Finding{}
}

// A --restart=always container that exits 3 every second is a restart
// loop, named with its image, exit code, count and rate.
func TestDockerRestartLoop(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := uniqueName("c4-loop")
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Restart: container.RestartPolicyAlways,
		Args:    []string{"-stdin=false", "-exit-after", "1s", "-exit-code", "3"},
	})
	// Caught between two runs, the container still holds its exit code,
	// whether or not the engine's short event log (shared with every
	// other container on this host) still holds its deaths; the engine
	// waits 0.8 s and more before a fourth restart.
	testload.WaitContainer(t, name, "restarted 3 times and waiting for the next", func(c *container.InspectResponse) bool {
		return c.RestartCount >= 3 && c.State.Restarting
	})

	res, err := checkDockerRestarts(t.Context(), liveDockerEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "container "+name)
	if f.Mode != "FM-C4" || f.Severity != finding.High {
		t.Errorf("mode %s severity %s; want FM-C4 high", f.Mode, f.Severity)
	}
	v := f.Evidence.Vars
	if v["exit_code"] != "3" || v["container"] != name || v["owner"] != "docker" || v["image"] != image {
		t.Errorf("vars %v; want exit_code 3, container %s, owner docker, image %s", v, name, image)
	}
	if n, _ := strconv.Atoi(v["restarts"]); n < 3 {
		t.Errorf("restarts %q; want at least 3", v["restarts"])
	}
	// At least 3 restarts within the minute the test allows.
	if r, _ := strconv.ParseFloat(v["rate"], 64); r < 3*60 {
		t.Errorf("rate %q per hour; want at least 180", v["rate"])
	}
	for _, want := range []string{"restart loop", "exit code 3", image, "restarts since"} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, f.Summary)
		}
	}
	if f.Since == nil {
		t.Error("no start time")
	}
}

// An on-failure:1 container whose only process is OOM-killed stops being
// restarted: the finding says it was OOM-killed and gave up.
func TestDockerOOMKilledGaveUp(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := uniqueName("c4-oom")
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Restart: container.RestartPolicyOnFailure, MaxRetries: 1,
		Limits: testload.Limits{Memory: 32 << 20},
		Args:   []string{"-hog", "-hog-mb", "96"},
	})
	testload.WaitContainer(t, name, "exited after its one retry", func(c *container.InspectResponse) bool {
		return c.State.Status == container.StateExited && c.RestartCount == 1
	})

	res, err := checkDockerRestarts(t.Context(), liveDockerEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "container "+name)
	if f.Mode != "FM-C4" || f.Severity != finding.High {
		t.Errorf("mode %s severity %s; want FM-C4 high", f.Mode, f.Severity)
	}
	if f.Evidence.Vars["oom"] != "true" || f.Evidence.Vars["exit_code"] != "137" {
		t.Errorf("vars %v; want oom true, exit_code 137", f.Evidence.Vars)
	}
	for _, want := range []string{"OOM killer", "exit code 137", `"on-failure:1" no longer restarts it`} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, f.Summary)
		}
	}
}

// Docker 20.10 left .State.OOMKilled false for a container whose process
// the kernel had OOM-killed (exit code 137): these are that container's
// inspect state and the kernel's lines for its two deaths, as a CI run of
// TestDockerOOMKilledGaveUp on 2026-12-02 left them (dmesg; the kernel's
// clock 2 s ahead of the wall clock). The kernel's record makes it an OOM
// kill; another container's, an older kill, or another exit code do not.
func TestKernelLogNamesAnOOMKillDockerMissed(t *testing.T) {
	const id = "092cb03758a0d1fe086aa0d3e89f5953455b29d17e5f171b4e929796383a957f"
	boot := time.Date(2026, 12, 2, 7, 44, 59, 0, time.UTC)
	at := func(sec float64) *time.Time {
		t := boot.Add(time.Duration(sec * float64(time.Second)))
		return &t
	}
	kill := func(sec float64, pid, cid string) []finding.Line {
		return []finding.Line{
			{Time: at(sec), Source: "kernel", Text: "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=" + cid + ",mems_allowed=0,oom_memcg=/docker/" + cid + ",task_memcg=/docker/" + cid + ",task=hinomi-testload,pid=" + pid + ",uid=0"},
			{Time: at(sec), Source: "kernel", Text: "Memory cgroup out of memory: Killed process " + pid + " (hinomi-testload) total-vm:1326268kB, anon-rss:32128kB, file-rss:2136kB, shmem-rss:0kB, UID:0 pgtables:156kB oom_score_adj:0"},
		}
	}
	real := &KernelLog{Lines: append(kill(4635.953060, "9630", id), kill(4636.247348, "9707", id)...)}
	died := time.Date(2026, 12, 2, 9, 2, 13, 0, time.UTC)
	ctr := func() *dockerContainer {
		return &dockerContainer{ID: id, Name: "hinomi-test-c4-oom-8946", Image: "hinomi-testload:test", Status: "exited",
			ExitCode: 137, Created: died.Add(-2 * time.Second), StartedAt: died.Add(-time.Second), FinishedAt: died,
			RestartCount: 1, RestartPolicy: "on-failure", MaxRetries: 1}
	}

	got := kernelOOM(real, ctr())
	if len(got) != 2 || !strings.Contains(got[0].Text, "pid=9707") || !strings.Contains(got[1].Text, "Killed process 9707") {
		t.Fatalf("kernelOOM = %v; want the second death's oom-kill line and its Killed process line", got)
	}
	other := strings.Replace(id, "092c", "ffff", 1)
	for name, c := range map[string]struct {
		kl  *KernelLog
		mod func(*dockerContainer)
	}{
		"another container's kill": {&KernelLog{Lines: kill(4636.247348, "9707", other)}, nil},
		"a kill long before":       {&KernelLog{Lines: kill(4636.247348-120, "9707", id)}, nil},
		"exit code 1":              {real, func(c *dockerContainer) { c.ExitCode = 1 }},
		"flagged by the engine":    {real, func(c *dockerContainer) { c.OOMKilled = true }},
		"no kernel log":            {nil, nil},
	} {
		d := ctr()
		if c.mod != nil {
			c.mod(d)
		}
		if got := kernelOOM(c.kl, d); got != nil {
			t.Errorf("%s: kernelOOM = %v; want none", name, got)
		}
	}

	// The finding says what the kernel saw, with its lines; the engine's
	// own state is left as it was.
	c := ctr()
	f, ok := liveRestartFinding(c, real, died.Add(time.Minute))
	if !ok || f.Mode != "FM-C4" || f.Evidence.Vars["oom"] != "true" || !strings.Contains(f.Summary, "killed by the OOM killer") {
		t.Fatalf("finding %v: %s %v; want FM-C4 naming the OOM kill", ok, f.Summary, f.Evidence.Vars)
	}
	var kernelLines int
	for _, l := range f.Evidence.Lines {
		if l.Source == "kernel" {
			kernelLines++
		}
	}
	if kernelLines != 2 || len(f.Evidence.Notes) == 0 || !strings.Contains(strings.Join(f.Evidence.Notes, " "), "did not mark the container as OOM-killed") {
		t.Errorf("evidence lines %v, notes %q; want the kernel's two lines and why they are there", f.Evidence.Lines, f.Evidence.Notes)
	}
	if c.OOMKilled {
		t.Error("the engine's shared state was changed")
	}
	// Without the kernel's record it is a plain exit 137.
	if f, _ := liveRestartFinding(ctr(), nil, died.Add(time.Minute)); f.Evidence.Vars["oom"] != "" {
		t.Errorf("without the kernel log: vars %v", f.Evidence.Vars)
	}
}

// A container whose health check fails is reported with the probe's
// output in full, and the finding replays from a snapshot.
func TestDockerUnhealthyShowsProbeOutput(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := uniqueName("c4-unhealthy")
	// Longer than any terminal line: it must not be cut.
	said := "probe: GET http://127.0.0.1:8080/healthz: connection refused; " + strings.Repeat("retry ", 40) + "end"
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Args:   []string{"-stdin=false"},
		Health: []string{"/" + testload.ProgramName, "-say", said, "-exit-code", "1"},
	})
	testload.WaitContainer(t, name, "unhealthy", func(c *container.InspectResponse) bool {
		return c.State.Health != nil && c.State.Health.Status == container.Unhealthy
	})

	env, rec, dir := recordingEnv(t)
	res, err := checkDockerRestarts(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(host.Meta{Host: "test", Taken: env.Now}); err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "container "+name)
	if f.Mode != "FM-C4" || f.Severity != finding.Medium {
		t.Errorf("mode %s severity %s; want FM-C4 medium", f.Mode, f.Severity)
	}
	if !strings.Contains(f.Summary, "unhealthy") || !strings.Contains(f.Summary, said) {
		t.Errorf("summary lacks the state or the probe's full output: %s", f.Summary)
	}
	if c := f.Evidence.Consumers; len(c) != 1 || c[0].Unit != "failed health checks" || c[0].Value < 1 {
		t.Errorf("consumers %+v; want the container with its failed checks", c)
	}
	if f.Evidence.Vars["probe_output"] != said {
		t.Errorf("probe_output %q; want %q", f.Evidence.Vars["probe_output"], said)
	}
	if len(f.Evidence.Lines) == 0 || f.Evidence.Lines[len(f.Evidence.Lines)-1].Text != said {
		t.Errorf("lines %+v; want the probe output last", f.Evidence.Lines)
	}

	assertReplays(t, dir, env.Now, checkDockerRestarts, f)
}

func TestRestartFindingCases(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	created := now.Add(-2 * time.Hour)
	cases := []struct {
		name string
		c    dockerContainer
		want finding.Severity // 0: no finding
	}{
		{"stable after old restarts", dockerContainer{Status: "running", Running: true, RestartCount: 7, Created: created, StartedAt: now.Add(-time.Hour), RestartPolicy: "always"}, 0},
		{"restarting", dockerContainer{Status: "restarting", Restarting: true, RestartCount: 1, ExitCode: 1, Created: created, RestartPolicy: "always"}, finding.High},
		{"up for seconds after many restarts", dockerContainer{Status: "running", Running: true, RestartCount: 12, Created: created, StartedAt: now.Add(-5 * time.Second), RestartPolicy: "always"}, finding.High},
		{"stopped by hand", dockerContainer{Status: "exited", ExitCode: 143, Created: created, RestartPolicy: "always"}, 0},
		{"no restart policy", dockerContainer{Status: "exited", ExitCode: 1, RestartCount: 0, Created: created}, 0},
		{"engine could not start it", dockerContainer{Status: "exited", ExitCode: 128, Error: "failed to create shim task: OCI runtime create failed", Created: created, RestartPolicy: "unless-stopped"}, finding.High},
		{"running, its last death from the events", dockerContainer{Status: "running", Running: true, RestartCount: 4, Created: created, StartedAt: now.Add(-time.Second), RestartPolicy: "always",
			Exits: []dockerExit{{now.Add(-9 * time.Second), 2}, {now.Add(-3 * time.Second), 3}}}, finding.High},
		{"running, its deaths gone from the engine's events", dockerContainer{Status: "running", Running: true, RestartCount: 4, Created: created, StartedAt: now.Add(-time.Second), RestartPolicy: "always"}, finding.High},
		{"healthy", dockerContainer{Status: "running", Running: true, Created: created, StartedAt: created, Health: &dockerHealth{Status: "healthy"}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Name = "web"
			f, ok := restartFinding(&tc.c, now)
			switch {
			case tc.want == 0 && ok:
				t.Errorf("finding %s: %s; want none", f.Severity, f.Summary)
			case tc.want != 0 && !ok:
				t.Errorf("no finding; want %s", tc.want)
			case ok && f.Severity != tc.want:
				t.Errorf("severity %s; want %s", f.Severity, tc.want)
			}
			if ok && len(tc.c.Exits) > 0 && (f.Evidence.Vars["exit_code"] != "3" || f.Evidence.Vars["exit_codes"] != "2 3") {
				t.Errorf("vars %v; want exit_code 3 and exit_codes \"2 3\" from the events", f.Evidence.Vars)
			}
			if ok && tc.c.Running && len(tc.c.Exits) == 0 && (f.Evidence.Vars["exit_code"] != "" || strings.Contains(f.Summary, "exit code 0")) {
				t.Errorf("a reset exit code is reported: vars %v, summary %s", f.Evidence.Vars, f.Summary)
			}
			if ok && tc.c.Error != "" && !strings.Contains(f.Summary, tc.c.Error) {
				t.Errorf("summary lacks the error in full: %s", f.Summary)
			}
		})
	}
}

// A Docker socket that accepts and never answers is FM-E7, high, found
// within the API's deadline, naming the dockerd that still runs.
func TestDockerAPIHang(t *testing.T) {
	sock := testload.SilentSocket(t)
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	src := host.Live()
	procs, err := proctable.Scan(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Src: src, Procs: procs, Now: time.Now(), Log: slog.New(slog.DiscardHandler)}
	dir := filepath.Join(t.TempDir(), "snap")
	rec, err := host.NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	src.Record(rec)

	start := time.Now()
	res, err := checkDockerAPI(t.Context(), env)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(host.Meta{Host: "test", Taken: env.Now}); err != nil {
		t.Fatal(err)
	}
	if took > 2*dockerCallTimeout {
		t.Errorf("took %s; want at most %s", took, 2*dockerCallTimeout)
	}
	f := findingFor(t, res, "docker API")
	if f.Mode != "FM-E7" || f.Severity != finding.High {
		t.Errorf("mode %s severity %s; want FM-E7 high", f.Mode, f.Severity)
	}
	if !strings.Contains(f.Summary, "unix://"+sock) || !strings.Contains(f.Summary, "did not answer a ping") {
		t.Errorf("summary does not name the socket and the call: %s", f.Summary)
	}
	if d := findDaemon(procs); d != nil {
		if f.Evidence.Vars["pid"] != strconv.Itoa(d.PID) || !strings.Contains(f.Summary, "while dockerd (pid "+strconv.Itoa(d.PID)) {
			t.Errorf("dockerd (pid %d) not named: vars %v, summary %s", d.PID, f.Evidence.Vars, f.Summary)
		}
	}
	// The restart check shares the one reading and stays quiet.
	if r, err := checkDockerRestarts(t.Context(), env); err != ErrNotApplicable || len(r.Findings) > 0 {
		t.Errorf("restart check: %v, %d findings; want not applicable", err, len(r.Findings))
	}

	// doctor --from replays the hang, with the same processes.
	snap, err := host.FromDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	replayed, err := checkDockerAPI(t.Context(), &Env{Src: snap, Procs: procs, Now: env.Now, Log: env.Log})
	if err != nil {
		t.Fatal(err)
	}
	if g := findingFor(t, replayed, "docker API"); g.Summary != f.Summary {
		t.Errorf("replayed summary\n%s\nwant\n%s", g.Summary, f.Summary)
	}
}

func TestDockerAPINoSocketIsNotApplicable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	env := liveDockerEnv(t)
	if _, err := checkDockerAPI(t.Context(), env); err != ErrNotApplicable {
		t.Errorf("err %v; want ErrNotApplicable", err)
	}
}

// A hung API with runc processes that have not exited for minutes and a
// shim in D state names them, oldest first.
func TestDockerAPIHangNamesStuckRuntimeProcesses(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	procs := &proctable.Table{Procs: []*proctable.Proc{
		{PID: 900, Comm: "dockerd", State: "S", Started: now.Add(-48 * time.Hour)},
		{PID: 4100, Comm: "runc", State: "D", Wchan: "cgroup_freeze", Started: now.Add(-7 * time.Minute)},
		{PID: 4200, Comm: "runc", State: "S", Started: now.Add(-2 * time.Second)},
		{PID: 3000, Comm: "containerd-shim", State: "D", Started: now.Add(-3 * time.Hour)},
	}}
	env := &Env{Procs: procs, Now: now, Log: slog.New(slog.DiscardHandler)}
	env.dockerOnce.Do(func() {
		env.dockerSt = &dockerState{Endpoint: "unix:///var/run/docker.sock", Hung: "list", Timeout: 3, Error: "list: no answer within 3s"}
	})
	res, err := checkDockerAPI(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "docker API")
	v := f.Evidence.Vars
	if v["pid"] != "3000" || v["comm"] != "containerd-shim" || v["stuck_for"] != "3h" {
		t.Errorf("vars %v; want the oldest stuck process, containerd-shim 3000, stuck 3h", v)
	}
	for _, want := range []string{"while dockerd (pid 900, up 2d) runs", "the container list", "2 runtime processes are stuck", "runc (pid 4100, 7m, state D)"} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, f.Summary)
		}
	}
	if strings.Contains(f.Summary, "4200") {
		t.Errorf("a runc process 2s old is named as stuck: %s", f.Summary)
	}
}

// A container limited to 64 MiB holding 52 MiB is near its memory limit:
// named, with its use and limit read from its own memory cgroup.
func TestDockerMemoryNearLimit(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := uniqueName("b4-memory")
	const limit = 64 << 20
	testload.RunContainerLimited(t, image, name, testload.Limits{Memory: limit}, "-hog-mb", "52")

	var f finding.Finding
	deadline := time.Now().Add(testload.ReadyTimeout)
	for found := false; !found; {
		env := liveDockerEnv(t)
		res, err := checkDockerMemory(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range res.Findings {
			if g.Subject == "memory of container "+name {
				f, found = g, true
			}
		}
		if !found && time.Now().After(deadline) {
			t.Fatalf("no memory finding for %s within %s; got %+v", name, testload.ReadyTimeout, res)
		}
		if !found {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if f.Mode != "FM-B4" || f.Severity < finding.Low {
		t.Errorf("mode %s severity %s; want FM-B4", f.Mode, f.Severity)
	}
	v := f.Evidence.Vars
	if v["limit"] != strconv.Itoa(limit) || v["container"] != name || v["owner"] != "docker" || v["resource"] != "memory" {
		t.Errorf("vars %v; want limit %d, container %s, owner docker, resource memory", v, limit, name)
	}
	if used, _ := strconv.Atoi(v["used"]); used < 48<<20 || used > limit {
		t.Errorf("used %s; want the 52 MiB held, within the limit", v["used"])
	}
	if !strings.Contains(f.Summary, "Container "+name) || !strings.Contains(f.Summary, "64.0 MiB memory limit") {
		t.Errorf("summary: %s", f.Summary)
	}
}

// The runbook of a looping Docker container has ready docker steps and no
// kubectl ones.
func TestDockerLoopRunbookSteps(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f, ok := restartFinding(&dockerContainer{ID: "4f1c", Name: "web", Image: "nginx:1.27", Status: "restarting", Restarting: true,
		RestartCount: 9, ExitCode: 3, Created: now.Add(-time.Hour), RestartPolicy: "always"}, now)
	if !ok {
		t.Fatal("no finding")
	}
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for _, sec := range []string{"Confirm", "Recover"} {
		steps, err := book.Get(f.Mode).Steps(sec, f.Evidence.Vars)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			for _, l := range s.Lines {
				if strings.Contains(l, "kubectl") {
					t.Errorf("%s step for a Docker container: %s", sec, l)
				}
				if s.Ready {
					ready[l] = true
				}
			}
		}
	}
	for _, want := range []string{"docker logs --tail 100 --timestamps web", "docker update --restart=no web"} {
		if !ready[want] {
			t.Errorf("no ready step %q among %v", want, ready)
		}
	}
	if ready["docker restart web"] {
		t.Error("a looping container is offered docker restart")
	}

	// Only unhealthy: restart it once fixed, no restart policy changes.
	f, _ = restartFinding(&dockerContainer{ID: "4f1c", Name: "web", Image: "nginx:1.27", Status: "running", Running: true,
		Created: now.Add(-time.Hour), StartedAt: now.Add(-time.Hour), Health: &dockerHealth{Status: "unhealthy", FailingStreak: 3,
			Log: []dockerProbe{{Start: now.Add(-time.Minute), ExitCode: 1, Output: "refused"}}}}, now)
	steps, err := book.Get(f.Mode).Steps("Recover", f.Evidence.Vars)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	restart := false
	for _, s := range steps {
		lines = append(lines, s.Lines...)
		for _, l := range s.Lines {
			restart = restart || (s.Ready && l == "docker restart web")
			if strings.Contains(l, "docker update") {
				t.Errorf("an unhealthy container is offered %s", l)
			}
		}
	}
	if !restart {
		t.Errorf("no ready docker restart for an unhealthy container among %q", lines)
	}
}

// The agent is woken by a container's third death within the loop window,
// an OOM kill or a turn to unhealthy, once per container per
// eventWakeEvery; other events only feed the deaths log.
func TestDockerEventsWorthADiagnosis(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msg := func(id string, action events.Action, at time.Time, attrs map[string]string) events.Message {
		return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}, TimeNano: at.UnixNano()}
	}
	die := func(id string, at time.Time, code string) events.Message {
		return msg(id, events.ActionDie, at, map[string]string{"exitCode": code, "name": "web"})
	}
	e := NewDockerEvents()
	steps := []struct {
		m    events.Message
		at   time.Time
		want bool
	}{
		{die("a", now, "3"), now, false},
		{die("a", now.Add(time.Second), "3"), now.Add(time.Second), false},
		{die("a", now.Add(2*time.Second), "3"), now.Add(2 * time.Second), true},  // third death: a loop
		{die("a", now.Add(3*time.Second), "3"), now.Add(3 * time.Second), false}, // already woken for a
		{msg("b", events.ActionOOM, now, nil), now.Add(3 * time.Second), true},
		{msg("c", "health_status: healthy", now, nil), now.Add(3 * time.Second), false},
		{msg("c", "health_status: unhealthy", now, nil), now.Add(3 * time.Second), true},
		{die("a", now.Add(11*time.Minute), "3"), now.Add(11 * time.Minute), false}, // one death in the window
		{die("a", now.Add(11*time.Minute+time.Second), "3"), now.Add(11*time.Minute + time.Second), false},
		{die("a", now.Add(11*time.Minute+2*time.Second), "1"), now.Add(11*time.Minute + 2*time.Second), true}, // a loop again, 10 min later
	}
	for i, s := range steps {
		if got := e.worth(s.m, s.at); got != s.want {
			t.Errorf("step %d (%s %s): worth %v; want %v", i, s.m.Actor.ID, s.m.Action, got, s.want)
		}
	}
	x, ok := e.exits("a", now)
	if !ok || len(x) != 7 || x[len(x)-1].Code != 1 {
		t.Errorf("exits of a: %v; want 7 deaths, the last with code 1", x)
	}
}
