package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/testload"
)

// hinomi snapshot records what the Docker checks asked the engine, and
// doctor --from replays it: a restart loop saved on this host is
// diagnosed from the directory after the container is gone.
func TestSnapshotReplaysDockerRestartLoop(t *testing.T) {
	testload.RequireDocker(t)
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := fmt.Sprintf("explain-snap-loop-%d", os.Getpid())
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Restart: container.RestartPolicyAlways,
		Args:    []string{"-stdin=false", "-exit-after", "1s", "-exit-code", "3"},
	})
	testload.WaitContainer(t, name, "restarted 3 times", func(c *container.InspectResponse) bool {
		return c.RestartCount >= 3 && (c.State.Restarting || c.State.Running)
	})

	dir := filepath.Join(t.TempDir(), "snap")
	out, errOut, code := runHinomi(t, nil, "snapshot", "--sample", "0", dir)
	if code != 0 {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "probes", "docker.json"))
	if err != nil {
		t.Fatalf("no Docker API responses in the snapshot: %v", err)
	}
	if !strings.Contains(string(b), `"name": "`+name+`"`) && !strings.Contains(string(b), `"name":"`+name+`"`) {
		t.Fatalf("probes/docker.json does not hold container %s", name)
	}
	// Gone from the engine: what doctor --from reports comes from the
	// snapshot alone.
	if out, err := exec.CommandContext(t.Context(), "docker", "rm", "-f", name).CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v\n%s", err, out)
	}

	out, errOut, code = runHinomi(t, nil, "doctor", "--from", dir, "--json")
	if code != doctor.ExitFindings {
		t.Fatalf("doctor --from: exit %d\n%s", code, errOut)
	}
	var r struct {
		Findings []struct {
			Key      string                           `json:"key"`
			Severity string                           `json:"severity"`
			Evidence struct{ Vars map[string]string } `json:"evidence"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if f.Key != "FM-C4/container "+name {
			continue
		}
		if f.Severity != "high" || f.Evidence.Vars["state"] != "loop" || f.Evidence.Vars["image"] != image {
			t.Errorf("replayed finding %+v; want high, a loop, image %s", f, image)
		}
		return
	}
	t.Errorf("doctor --from did not report the restart loop of %s:\n%s", name, out)
}
