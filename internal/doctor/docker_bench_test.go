package doctor

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/testload"
)

// BenchmarkDoctorDocker200 times the real hinomi doctor binary on a host
// running 200 containers (FROM scratch, the test-load program idling), and
// in the same run `docker ps -a --size`, which tools that size every
// container's writable layer call and which doctor does not.
func BenchmarkDoctorDocker200(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: doctor reads every process")
	}
	const n = 200
	image := testload.ScratchImage(b, testload.DefaultImage)
	for i := range n {
		testload.StartContainer(b, image, fmt.Sprintf("hinomi-bench-docker-%d-%d", os.Getpid(), i), testload.ContainerSpec{Args: []string{"-stdin=false"}})
	}
	for i := range n {
		testload.WaitContainer(b, fmt.Sprintf("hinomi-bench-docker-%d-%d", os.Getpid(), i), "running", func(c *container.InspectResponse) bool {
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
		b.Logf("%d running containers: doctor median of 3 %.3f s; docker ps -a --size median of 3 %.3f s", n, d.Seconds(), p.Seconds())
	}
}
