package agent

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// The agent runs the swarm check every cycle: a service whose tasks are
// all rejected (its bind mount's source is missing) is reported within
// one interval of its creation, with the engine's full error.
func TestAgentSeesRejectedSwarmTasks(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	testload.Swarm(t)
	const interval = 3 * time.Second
	a := runAgent(t, Config{Name: "pve1", Interval: interval})

	poll := func(what string, ok func() bool) { t.Helper(); pollFor(t, what, ok) }
	poll("the first diagnosis", func() bool { return len(spooledFindings(t, a)) > 0 })

	name := fmt.Sprintf("swarm-agent-rejected-%d", os.Getpid())
	missing := fmt.Sprintf("/nonexistent/swarm-agent-%d", os.Getpid())
	started := time.Now()
	testload.StartService(t, image, name, testload.ServiceSpec{Args: []string{"-stdin=false"}, BindSource: missing})
	var got *finding.Finding
	poll("an FM-C4 finding for "+name, func() bool {
		for _, rec := range spooledFindings(t, a) {
			for i, f := range rec.Open {
				if f.Key == "FM-C4/swarm service "+name {
					got = &rec.Open[i]
				}
			}
		}
		return got != nil
	})
	took := time.Since(started)
	t.Logf("reported %s after the service was created: %s", took.Round(time.Millisecond), got.Summary)
	// One cycle: the interval, plus the diagnosis itself (a few seconds
	// on a loaded machine).
	if limit := interval + 5*time.Second; took > limit {
		t.Errorf("reported after %s; want within one cycle (%s)", took, limit)
	}
	want := `invalid mount config for type "bind": bind source path does not exist: ` + missing
	if got.Severity != finding.High || got.Evidence.Vars["reason"] != want {
		t.Errorf("severity %s reason %q; want high, %q", got.Severity, got.Evidence.Vars["reason"], want)
	}
}
