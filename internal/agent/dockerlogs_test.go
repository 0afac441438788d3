package agent

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// TestAgentFollowsContainerLogs: a container started after the agent,
// whose service logs a distress line (the catalogue's real nfs example),
// becomes a log finding naming the container's log as its source, within
// seconds, with the real engine.
func TestAgentFollowsContainerLogs(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	a := runAgent(t, Config{Name: "dock1", Interval: 300 * time.Millisecond, ContainerLogs: true})
	poll := func(what string, ok func() bool) { t.Helper(); pollFor(t, what, ok) }
	poll("the first diagnosis", func() bool { return len(spooledFindings(t, a)) > 0 })

	name := fmt.Sprintf("hinomi-test-agent-logs-%d", os.Getpid())
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Args: []string{"-stdin=false", "-log", "kernel: nfs: server td-mf-cl2.princeton.edu not responding, still trying"},
	})
	var got *finding.Finding
	poll("a log finding from the container", func() bool {
		for _, rec := range spooledFindings(t, a) {
			for i, f := range rec.Open {
				if strings.HasPrefix(f.Subject, "log nfs-not-responding") {
					got = &rec.Open[i]
				}
			}
		}
		return got != nil
	})
	if got.Mode != "FM-C6" || got.Severity != finding.High {
		t.Errorf("finding %s %s", got.Mode, got.Severity)
	}
	src := ""
	for _, l := range got.Evidence.Lines {
		src += l.Source + " "
	}
	if !strings.Contains(src, "container "+name) {
		t.Errorf("the finding's lines come from %q; want the container %s", src, name)
	}
}
