package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/testload"
)

// containerName is unique per test run, with this package's prefix.
func containerName(what string) string {
	return fmt.Sprintf("probes-%s-%d", what, os.Getpid())
}

// Docker probes against the real dockerd, on containers from a FROM scratch image of the
// static test-load program.
func TestDockerProbe(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	healthy := containerName("healthy")
	sick := containerName("unhealthy")
	crashed := containerName("exited")
	testload.StartContainer(t, image, healthy, testload.ContainerSpec{
		Args:   []string{"-stdin=false"},
		Health: []string{"/" + testload.ProgramName, "-say", "ok", "-exit-code", "0"},
	})
	testload.StartContainer(t, image, sick, testload.ContainerSpec{
		Args:   []string{"-stdin=false"},
		Health: []string{"/" + testload.ProgramName, "-say", "db: connection refused", "-exit-code", "1"},
	})
	testload.StartContainer(t, image, crashed, testload.ContainerSpec{Args: []string{"-stdin=false", "-exit-after", "1ms", "-exit-code", "3"}})
	testload.WaitContainer(t, healthy, "healthy", func(c *container.InspectResponse) bool {
		return c.State.Health != nil && c.State.Health.Status == container.Healthy
	})
	testload.WaitContainer(t, sick, "unhealthy", func(c *container.InspectResponse) bool {
		return c.State.Health != nil && c.State.Health.Status == container.Unhealthy
	})
	testload.WaitContainer(t, crashed, "exited", func(c *container.InspectResponse) bool {
		return c.State.Status == container.StateExited
	})
	env := &Env{}

	r := run(t, &Spec{Name: "web", Type: Docker, Target: healthy}, env)
	wantStatus(t, r, Up)
	r = run(t, &Spec{Name: "web", Type: Docker, Target: healthy, Conditions: []string{
		"[BODY].State.Health.Status == healthy", "[BODY].State.Running == true", `[BODY].Name == "/` + healthy + `"`,
		"has([BODY].Config.Env) == false", "[RESPONSE_TIME] < 10s"}}, env)
	wantStatus(t, r, Up)
	if r.Values["container_status"] != "running" || r.Values["health"] != "healthy" {
		t.Errorf("values %v", r.Values)
	}

	for _, tc := range []struct {
		target string
		want   string
	}{
		{sick, "container " + sick + " is unhealthy: db: connection refused"},
		{crashed, "container " + crashed + " exited with code 3 (at|on) [0-9]"},
		{containerName("missing"), "no container named " + containerName("missing")},
	} {
		r := run(t, &Spec{Name: "web", Type: Docker, Target: tc.target}, env)
		wantStatus(t, r, Down)
		if !regexp.MustCompile("^" + tc.want).MatchString(r.Reason) { // names have no regexp characters
			t.Errorf("reason %q; want %q", r.Reason, tc.want)
		}
	}
	// A condition on the state decides when it reads [CONNECTED]: a job that must have
	// stopped.
	r = run(t, &Spec{Name: "job", Type: Docker, Target: crashed, Conditions: []string{"[CONNECTED] == false", "[BODY].State.ExitCode == 3"}}, env)
	wantStatus(t, r, Up)

	// An engine that does not answer.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	r = run(t, &Spec{Name: "web", Type: Docker, Target: healthy, Timeout: 2 * time.Second, Interval: time.Minute}, &Env{})
	wantStatus(t, r, Down)
	if r.Reason != "Docker does not answer" {
		t.Errorf("reason %q (error %q)", r.Reason, r.Error)
	}
	// An engine that accepts and never answers (hung).
	t.Setenv("DOCKER_HOST", "unix://"+testload.SilentSocket(t))
	r = run(t, &Spec{Name: "web", Type: Docker, Target: healthy, Timeout: 500 * time.Millisecond, Interval: time.Minute}, &Env{})
	wantStatus(t, r, Down)
	if r.Reason != "Docker does not answer" || !strings.Contains(r.Error, "no answer within 500ms") {
		t.Errorf("reason %q (error %q)", r.Reason, r.Error)
	}
}

func TestContainerProblemWords(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   container.State
		want string
	}{
		{container.State{Status: container.StateExited, ExitCode: 3, FinishedAt: "2026-12-02T10:02:00.5Z"}, "container web exited with code 3 at 10:02"},
		{container.State{Status: container.StateExited, ExitCode: 137, OOMKilled: true, FinishedAt: "2026-11-30T08:00:00Z"}, "container web exited with code 137 on 30 Nov at 08:00 (out of memory)"},
		{container.State{Status: container.StateRestarting, Restarting: true, Running: true, ExitCode: 1, FinishedAt: "2026-12-02T10:29:00Z"}, "container web is restarting: it exited with code 1 at 10:29"},
		{container.State{Status: container.StatePaused, Running: true, Paused: true}, "container web is paused"},
		{container.State{Status: container.StateCreated}, "container web was created but never started"},
		{container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Unhealthy,
			Log: []*container.HealthcheckResult{{ExitCode: 1, Output: "curl: (7) Failed to connect\n"}}}}, "container web is unhealthy: curl: (7) Failed to connect"},
		{container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Unhealthy,
			Log: []*container.HealthcheckResult{{ExitCode: 7, Output: "curl: (7) Failed to connect to 10.0.0.5 port 8080 after 0 ms: Connection refused\n"}}}},
			"container web is unhealthy: curl: (7) Failed to connect to <address> port 8080 after 0 ms: Connection refuse…"},
		{container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Unhealthy,
			Log: []*container.HealthcheckResult{{ExitCode: 1, Output: "GET http://127.0.0.1:8080/healthz: 503 from [::1]:8080"}}}},
			"container web is unhealthy: GET <address>: 503 from <address>"},
		{container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Starting}}, ""},
	} {
		got := ""
		if err := containerProblem("web", &tc.st, now); err != nil {
			got = err.(*protoError).plain
		}
		if got != tc.want {
			t.Errorf("%+v: %q; want %q", tc.st, got, tc.want)
		}
	}
}
