package doctor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/proctable"
	"github.com/hinomi/hinomi/internal/testload"
)

// benchContainers is how many containers BenchmarkDoctorDocker200 runs;
// their names are fixed (dockerdisk-bench-N), so a run interrupted before
// its cleanup has its leftovers removed by the next one.
const benchContainers = 200

// agentCycles is how many Docker watching cycles the benchmark times.
const agentCycles = 10

// BenchmarkDoctorDocker200 times the real hinomi doctor binary on a host
// running 200 containers (FROM scratch, the test-load program idling,
// --network none), and in the same run `docker ps -a --size`, which tools
// that size every container's writable layer call and which doctor does
// not: doctor measures each layer and log on disk itself. It prints
// doctor's wall time beside that baseline, with their ratio.
//
// It then runs the agent's Docker watching (the event stream, and per
// cycle the container list, every inspection, memory cgroups and the
// disk measurement) for agentCycles cycles, and prints its CPU time per
// cycle, its own and the Docker daemon's, as a share of one core at the
// agent's default 15 s interval.
func BenchmarkDoctorDocker200(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: doctor reads every process")
	}
	image := testload.ScratchImage(b, testload.DefaultImage)
	for i := range benchContainers {
		testload.StartContainer(b, image, fmt.Sprintf("dockerdisk-bench-%d", i), testload.ContainerSpec{Args: []string{"-stdin=false"}})
	}
	for i := range benchContainers {
		testload.WaitContainer(b, fmt.Sprintf("dockerdisk-bench-%d", i), "running", func(c *container.InspectResponse) bool {
			return c.State.Running
		})
	}
	bin := buildHinomi(b)
	// run returns the command's wall time and its own CPU time (user and
	// system): on a loaded machine the wall time grows with the load,
	// the CPU time much less.
	run := func(argv ...string) (wall, cpu time.Duration) {
		cmd := exec.Command(argv[0], argv[1:]...)
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == ExitFindings) {
			b.Fatalf("%s: %v", argv[0], err)
		}
		return took, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	b.ResetTimer()
	for b.Loop() {
		var doctorT, doctorCPU, psT []time.Duration
		daemon0 := procCPU(dockerdPID())
		for range 3 {
			w, c := run(bin, "doctor")
			doctorT, doctorCPU = append(doctorT, w), append(doctorCPU, c)
			w, _ = run("docker", "ps", "-a", "--size")
			psT = append(psT, w)
		}
		daemon := (procCPU(dockerdPID()) - daemon0) / 3
		d, c, p := median(doctorT), median(doctorCPU), median(psT)
		b.ReportMetric(d.Seconds(), "doctor-s")
		b.ReportMetric(c.Seconds(), "doctor-cpu-s")
		b.ReportMetric(p.Seconds(), "docker-ps-size-s")
		b.Logf("%d running containers, load average %s: doctor median of 3 %.3f s wall (%.3f s CPU); docker ps -a --size median of 3 %.3f s (baseline); doctor/baseline %.2f; dockerd CPU per doctor + docker ps pair %.0f ms",
			benchContainers, loadAvg(), d.Seconds(), c.Seconds(), p.Seconds(), d.Seconds()/p.Seconds(), ms(daemon))
	}
	b.StopTimer()
	agentDockerCost(b)
}

// agentDockerCost runs the agent's Docker watching for agentCycles cycles
// back to back and reports the CPU it took per cycle, in this process and
// in dockerd, as a share of a core at the default interval.
func agentDockerCost(b *testing.B) {
	var docker []checks.Check
	for _, c := range checks.All() {
		if strings.HasPrefix(c.Name, "docker-") {
			docker = append(docker, c)
		}
	}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	events := checks.NewDockerEvents()
	go events.Watch(ctx, slog.New(slog.DiscardHandler), func() {})
	trend := checks.NewDiskTrend()
	src := host.Live()
	procs, err := proctable.Scan(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	dockerd := dockerdPID()
	self0, daemon0, wall0 := selfCPU(), procCPU(dockerd), time.Now()
	for range agentCycles {
		env := &checks.Env{Src: src, Host: "bench", Procs: procs, Now: time.Now(), DockerEvents: events, DiskTrend: trend, Log: slog.New(slog.DiscardHandler)}
		rep := checks.Run(ctx, env, docker)
		if len(rep.Errors) > 0 {
			b.Fatalf("Docker checks failed: %v", rep.Errors)
		}
	}
	self, daemon, wall := (selfCPU()-self0)/agentCycles, (procCPU(dockerd)-daemon0)/agentCycles, time.Since(wall0)/agentCycles
	interval := 15 * time.Second
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / interval.Seconds() }
	b.ReportMetric(pct(self), "agent-docker-%core")
	b.ReportMetric(pct(daemon), "dockerd-%core")
	b.Logf("load average %s; agent Docker watching, %d cycles over %d containers: %.1f ms wall, %.1f ms CPU in the agent and %.1f ms in dockerd per cycle; at the %s interval %.2f %% + %.2f %% of one core",
		loadAvg(), agentCycles, benchContainers, ms(wall), ms(self), ms(daemon), interval, pct(self), pct(daemon))
}

// dockerdPID is the host's dockerd, 0 when none runs.
func dockerdPID() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, _ := os.ReadFile("/proc/" + e.Name() + "/comm"); strings.TrimSpace(string(c)) == "dockerd" {
			return pid
		}
	}
	return 0
}

// loadAvg is the 1-minute load average, as the benchmark saw it.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a process's user and system CPU time from /proc/PID/stat
// (clock ticks of 10 ms); 0 when pid is 0 or gone.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
