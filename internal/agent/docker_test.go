package agent

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// With an interval of an hour, a container that starts looping after the
// agent's first diagnosis is reported within seconds: its die events wake
// the agent.
func TestAgentSeesRestartLoopFromDockerEvents(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	a := runAgent(t, Config{Name: "pve1", Interval: time.Hour})

	poll := func(what string, ok func() bool) { t.Helper(); pollFor(t, what, ok) }
	poll("the first diagnosis", func() bool { return len(spooledFindings(t, a)) > 0 })

	name := fmt.Sprintf("hinomi-test-agent-loop-%d", os.Getpid())
	started := time.Now()
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Restart: container.RestartPolicyAlways,
		Args:    []string{"-stdin=false", "-exit-after", "500ms", "-exit-code", "3"},
	})
	var got *finding.Finding
	poll("an FM-C4 finding for "+name, func() bool {
		for _, rec := range spooledFindings(t, a) {
			for i, f := range rec.Open {
				if f.Key == "FM-C4/container "+name {
					got = &rec.Open[i]
				}
			}
		}
		return got != nil
	})
	t.Logf("reported %s after the container started: %s", time.Since(started).Round(time.Millisecond), got.Summary)
	if got.Severity != finding.High || got.Evidence.Vars["exit_code"] != "3" {
		t.Errorf("severity %s vars %v; want high, exit code 3", got.Severity, got.Evidence.Vars)
	}
}
