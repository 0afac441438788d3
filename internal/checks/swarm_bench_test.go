package checks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/client"

	swarmdiag "github.com/hinomi/hinomi/internal/swarm"
	"github.com/hinomi/hinomi/internal/testload"
)

// swarmBenchServices is how many services with rejected tasks the swarm
// benchmark makes: each keeps up to six tasks, so the task list holds
// about a hundred.
const swarmBenchServices = 16

// BenchmarkSwarmCheck times the swarm check's own reading and diagnosis on a single-node swarm whose
// services all have their tasks rejected (median of 5 runs), beside the
// command a person runs to see the same errors, `docker service ps
// --no-trunc` of every service (median of 3), and the check outside a
// swarm beside a bare ping of the engine.
func BenchmarkSwarmCheck(b *testing.B) {
	image := testload.ScratchImage(b, testload.DefaultImage)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	median := func(n int, f func()) time.Duration {
		var ds []time.Duration
		for range n {
			start := time.Now()
			f()
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	ctx := context.Background()

	outside := time.Duration(0)
	if st := readSwarm(ctx, "bench"); st.LocalState == "inactive" {
		outside = median(5, func() { readSwarm(ctx, "bench") })
	}
	ping := median(5, func() { _, _ = cli.Ping(ctx, client.PingOptions{}) })

	testload.Swarm(b)
	var names []string
	for i := range swarmBenchServices {
		name := fmt.Sprintf("swarm-bench-%d-%d", os.Getpid(), i)
		testload.StartService(b, image, name, testload.ServiceSpec{Args: []string{"-stdin=false"}, BindSource: "/nonexistent/" + name, RestartDelay: 200 * time.Millisecond})
		names = append(names, name)
	}
	// Let every service reach Swarm's task history limit.
	deadline := time.Now().Add(testload.ReadyTimeout)
	for {
		st := readSwarm(ctx, "bench")
		if len(st.Tasks) >= swarmBenchServices*5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the engine rejects tasks on its own schedule
	}
	// The check's own cost: the swarm calls and the diagnosis. The
	// engine's container state it starts from is read once per run for
	// all the Docker checks.
	var findings, tasks int
	check := median(5, func() {
		st := readSwarm(ctx, "bench")
		tasks = len(st.Tasks)
		findings = len(swarmdiag.Diagnose(&st, time.Now()).Findings)
	})
	cmd := median(3, func() {
		out, err := exec.Command("docker", append([]string{"service", "ps", "--no-trunc"}, names...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("docker service ps: %v: %s", err, out)
		}
	})
	for b.Loop() {
	}
	b.ReportMetric(check.Seconds(), "swarm-check-s")
	b.ReportMetric(cmd.Seconds(), "cli-service-ps-s")
	b.ReportMetric(check.Seconds()/cmd.Seconds(), "check/cli")
	b.ReportMetric(float64(tasks), "tasks")
	b.ReportMetric(float64(findings), "findings")
	if outside > 0 {
		b.ReportMetric(outside.Seconds(), "outside-swarm-s")
		b.ReportMetric(outside.Seconds()/ping.Seconds(), "outside/ping")
	}
}
