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
	run := func(argv ...string) time.Duration {
		cmd := exec.Command(argv[0], argv[1:]...)
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == ExitFindings) {
			b.Fatalf("%s: %v", argv[0], err)
		}
		return took
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	b.ResetTimer()
	for b.Loop() {
		var doctorT, psT []time.Duration
		for range 3 {
			doctorT = append(doctorT, run(bin, "doctor"))
			psT = append(psT, run("docker", "ps", "-a", "--size"))
		}
		d, p := median(doctorT), median(psT)
		b.ReportMetric(d.Seconds(), "doctor-s")
		b.ReportMetric(p.Seconds(), "docker-ps-size-s")
		b.Logf("%d running containers: doctor median of 3 %.3f s; docker ps -a --size median of 3 %.3f s (baseline); doctor/baseline %.2f",
			benchContainers, d.Seconds(), p.Seconds(), d.Seconds()/p.Seconds())
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
	dockerd := 0
	for _, p := range procs.Procs {
		if p.Comm == "dockerd" {
			dockerd = p.PID
		}
	}
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
	b.Logf("agent Docker watching, %d cycles over %d containers: %.1f ms wall, %.1f ms CPU in the agent and %.1f ms in dockerd per cycle; at the %s interval %.2f %% + %.2f %% of one core",
		agentCycles, benchContainers, ms(wall), ms(self), ms(daemon), interval, pct(self), pct(daemon))
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
