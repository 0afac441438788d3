package explain

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// explainOne explains the one recognised part of a capture in testdata.
func explainOne(t *testing.T, file, format string) Result {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return explainText(t, string(b), format, explainNow)
}

func explainText(t *testing.T, text, format string, now time.Time) Result {
	t.Helper()
	for _, in := range Clean("paste", []byte(text), now) {
		f, ok := Recognise(&in, All())
		if !ok || f.Name != format {
			continue
		}
		res, err := Explain(&in, f)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		return res
	}
	t.Fatalf("no part read as %s", format)
	return Result{}
}

func findingAbout(t *testing.T, res Result, subject string) finding.Finding {
	t.Helper()
	var got []string
	for _, f := range res.Findings {
		if f.Subject == subject {
			return f
		}
		got = append(got, f.Subject)
	}
	t.Fatalf("no finding about %q; got %q (notes %q)", subject, got, res.Notes)
	return finding.Finding{}
}

func hasNote(res Result, sub string) bool {
	for _, n := range res.Notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func TestDockerPSRestartLoop(t *testing.T) {
	res := explainOne(t, "docker-ps-restarting.txt", "docker-ps")
	f := findingAbout(t, res, "container yyy-2012")
	v := f.Evidence.Vars
	if f.Mode != "FM-C4" || f.Severity != finding.High || v["state"] != "loop" || v["exit_code"] != "-1" || v["container"] != "yyy-2012" || v["image"] != "xxx/yyy" {
		t.Errorf("%s %s vars %v; want FM-C4 high, loop, exit_code -1, container yyy-2012, image xxx/yyy", f.Mode, f.Severity, v)
	}
	// docker ps shows no restart count: none is made up.
	if _, ok := v["restarts"]; ok {
		t.Errorf("restarts %q from docker ps, which does not show it", v["restarts"])
	}
	if len(f.Evidence.Lines) == 0 || f.Evidence.Lines[0].Text != "Restarting (-1) About an hour ago" {
		t.Errorf("lines %+v; want the status as printed", f.Evidence.Lines)
	}
}

func TestDockerPSUnhealthyWithoutHeader(t *testing.T) {
	res := explainOne(t, "docker-ps-unhealthy.txt", "docker-ps")
	f := findingAbout(t, res, "container nginx")
	if f.Evidence.Vars["state"] != "unhealthy" || f.Evidence.Vars["image"] != "goharbor/nginx-photon:v1.6.2" {
		t.Errorf("vars %v; want state unhealthy, image goharbor/nginx-photon:v1.6.2", f.Evidence.Vars)
	}
	if _, ok := f.Evidence.Vars["probe_output"]; ok {
		t.Error("probe_output set from docker ps, which does not show it")
	}
	// The row the index cut before its status cannot be read: it is
	// said, not guessed.
	if !hasNote(res, "Read 6 containers: 6 running") || !hasNote(res, "9cace8419b9b") {
		t.Errorf("notes %q; want 6 rows read and the cut one named as skipped", res.Notes)
	}
}

func TestDockerPSExitedCodes(t *testing.T) {
	res := explainOne(t, "docker-ps-exited.txt", "docker-ps")
	f := findingAbout(t, res, "container kickass_babbage")
	if f.Severity != finding.Low || f.Evidence.Vars["exit_code"] != "1" || f.Evidence.Vars["state"] != "exited" {
		t.Errorf("severity %s vars %v; want low, exited with 1", f.Severity, f.Evidence.Vars)
	}
	if len(res.Findings) != 3 {
		t.Errorf("%d findings; want the 3 containers that exited 1, not the 5 that exited 0", len(res.Findings))
	}
}

func TestDockerInspectHealthFromPrompt(t *testing.T) {
	res := explainOne(t, "docker-inspect-health-unhealthy.txt", "docker-inspect")
	f := findingAbout(t, res, "container 196f25856b9d")
	want := "curl: (7) Failed to connect to localhost port 23 after 0 ms: Couldn't connect to server"
	if f.Severity != finding.Medium || f.Evidence.Vars["probe_output"] != want {
		t.Errorf("severity %s probe_output %q; want medium and %q", f.Severity, f.Evidence.Vars["probe_output"], want)
	}
	if f.Since == nil || !f.Since.Equal(time.Date(2024, 7, 12, 14, 45, 34, 151339146, time.UTC)) {
		t.Errorf("since %v; want the first failing probe's start", f.Since)
	}
}

func TestDockerInspectStreakAfterPasses(t *testing.T) {
	res := explainOne(t, "docker-inspect-health-streak.txt", "docker-inspect")
	f := findingAbout(t, res, "container (unnamed)")
	if n := len(f.Evidence.Lines); n != 2 {
		t.Errorf("%d probe lines; want the 2 of the failing streak, not the passes before it", n)
	}
}

func TestDockerInspectCutShort(t *testing.T) {
	res := explainOne(t, "docker-inspect-exited-137.txt", "docker-inspect")
	if len(res.Findings) != 0 {
		t.Errorf("findings %v; an exit 137 without a restart policy is no loop", res.Findings)
	}
	if !hasNote(res, "cut short") || !hasNote(res, "exit code 137 (SIGKILL)") {
		t.Errorf("notes %q; want the cut and the container's exit said", res.Notes)
	}
}

func TestDockerInfoSwarmError(t *testing.T) {
	res := explainOne(t, "docker-info-swarm-error.txt", "docker-info")
	f := findingAbout(t, res, "swarm node ubuntu")
	if f.Mode != "FM-D10" || f.Severity != finding.High || f.Evidence.Vars["node_id"] != "ljj1zkm5nzejtpglvtmy72ykm" {
		t.Errorf("%s %s vars %v; want FM-D10 high with the node ID", f.Mode, f.Severity, f.Evidence.Vars)
	}
	if !strings.Contains(f.Summary, "rpc error: code = 4 desc = context deadline exceeded") {
		t.Errorf("summary lacks the swarm's error: %s", f.Summary)
	}
	if !hasNote(res, "4 containers: 0 running, 0 paused, 4 stopped") {
		t.Errorf("notes %q; want the containers by state", res.Notes)
	}
}

func TestDockerInfoWarningsAreNotes(t *testing.T) {
	res := explainOne(t, "docker-info-warnings.txt", "docker-info")
	if len(res.Findings) != 0 {
		t.Errorf("findings %v; the engine's setup warnings are not failures", res.Findings)
	}
	for _, w := range []string{"No memory limit support", "No cpu cfs period support", "Storage driver overlay2 on extfs"} {
		if !hasNote(res, w) {
			t.Errorf("notes %q lack %q", res.Notes, w)
		}
	}
}

// A devicemapper pool near full is FM-C2, by the figures docker info
// prints. (A data structure, not a capture: the diagnosis alone.)
func TestDockerInfoDevicemapperFull(t *testing.T) {
	fs, _ := checks.DockerInfoFindings(system.Info{
		Driver: "devicemapper", DockerRootDir: "/var/lib/docker",
		DriverStatus: [][2]string{{"Data Space Used", "100.2 GB"}, {"Data Space Total", "107.4 GB"}, {"Data Space Available", "7.2 GB"}},
		Swarm:        swarm.Info{LocalNodeState: "inactive"},
	})
	if len(fs) != 1 || fs[0].Mode != "FM-C2" || fs[0].Severity < finding.Medium || fs[0].Subject != "docker devicemapper data space" {
		t.Fatalf("findings %+v; want one FM-C2 at least medium about the data space", fs)
	}
}

// The same container, read live by doctor's check and pasted from the
// docker CLI, gives the same diagnosis: a --restart=always container
// exiting 3 every second.
func TestExplainRealDockerOutputs(t *testing.T) {
	testload.RequireDocker(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := fmt.Sprintf("explain-c4-loop-%d", os.Getpid())
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Restart: container.RestartPolicyAlways,
		Args:    []string{"-stdin=false", "-exit-after", "1s", "-exit-code", "3"},
	})
	testload.WaitContainer(t, name, "restarted 3 times and waiting for the next", func(c *container.InspectResponse) bool {
		return c.RestartCount >= 3 && c.State.Restarting
	})
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), "docker", args...).Output()
		if err != nil {
			t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	// Both are read at once, while the engine still waits to restart it.
	inspect := run("inspect", name)
	ps := run("ps", "-a", "--no-trunc", "--filter", "name=^/"+name+"$")

	f := findingAbout(t, explainText(t, inspect, "docker-inspect", time.Now()), "container "+name)
	v := f.Evidence.Vars
	if f.Severity != finding.High || v["state"] != "loop" || v["exit_code"] != "3" || v["image"] != image {
		t.Errorf("inspect: %s vars %v; want high, loop, exit_code 3, image %s", f.Severity, v, image)
	}
	if n, _ := strconv.Atoi(v["restarts"]); n < 3 {
		t.Errorf("inspect: restarts %q; want at least 3", v["restarts"])
	}
	if r, _ := strconv.ParseFloat(v["rate"], 64); r < 3*60 {
		t.Errorf("inspect: rate %q per hour; want at least 180", v["rate"])
	}

	// docker ps may catch it up again for a moment; then it is no loop
	// by what the list shows.
	if strings.Contains(ps, "Restarting (3)") {
		f = findingAbout(t, explainText(t, "$ docker ps -a --no-trunc\n"+ps, "docker-ps", time.Now()), "container "+name)
		if f.Severity != finding.High || f.Evidence.Vars["state"] != "loop" || f.Evidence.Vars["exit_code"] != "3" {
			t.Errorf("ps: %s vars %v; want high, loop, exit_code 3", f.Severity, f.Evidence.Vars)
		}
	} else {
		t.Logf("docker ps caught the container running again: %s", ps)
	}

	// An unhealthy container: the probe's output, in full, from the paste.
	sick := fmt.Sprintf("explain-c4-unhealthy-%d", os.Getpid())
	said := "probe: GET http://127.0.0.1:8080/healthz: connection refused"
	testload.StartContainer(t, image, sick, testload.ContainerSpec{
		Args:   []string{"-stdin=false"},
		Health: []string{"/" + testload.ProgramName, "-say", said, "-exit-code", "1"},
	})
	testload.WaitContainer(t, sick, "unhealthy", func(c *container.InspectResponse) bool {
		return c.State.Health != nil && c.State.Health.Status == container.Unhealthy
	})
	f = findingAbout(t, explainText(t, run("inspect", sick), "docker-inspect", time.Now()), "container "+sick)
	if f.Severity != finding.Medium || f.Evidence.Vars["probe_output"] != said {
		t.Errorf("inspect unhealthy: %s probe_output %q; want medium, %q", f.Severity, f.Evidence.Vars["probe_output"], said)
	}
	f = findingAbout(t, explainText(t, run("ps", "-a", "--filter", "name=^/"+sick+"$"), "docker-ps", time.Now()), "container "+sick)
	if f.Severity != finding.Medium || f.Evidence.Vars["state"] != "unhealthy" {
		t.Errorf("ps unhealthy: %s vars %v; want medium, unhealthy", f.Severity, f.Evidence.Vars)
	}

	info := explainText(t, run("info"), "docker-info", time.Now())
	if !hasNote(info, "Storage driver") {
		t.Errorf("docker info notes %q; want the storage driver", info.Notes)
	}
}

// The mounts of a container with a finding are in its notes. (A data
// structure, not a capture: the diagnosis alone.)
func TestDockerInspectMountsNoted(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fs, _ := checks.DockerInspectFindings([]container.InspectResponse{{
		ID: "0123456789abcdef", Name: "/ldap", RestartCount: 5, Created: now.Add(-time.Hour).Format(time.RFC3339),
		State: &container.State{Status: "restarting", Restarting: true, ExitCode: 1,
			Error: "failed to mount local volume: mount /dev/drbd8:/var/lib/docker/volumes/ldap_data/_data: invalid argument"},
		HostConfig: &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: "always"}},
		Mounts: []container.MountPoint{
			{Type: "volume", Name: "ldap_data", Destination: "/var/lib/ldap", RW: true},
			{Type: "bind", Source: "/srv/ldap/conf", Destination: "/etc/ldap"},
		},
	}}, now)
	if len(fs) != 1 || !slices.Contains(fs[0].Evidence.Notes, "Its mounts: volume ldap_data at /var/lib/ldap, bind /srv/ldap/conf at /etc/ldap (read-only).") {
		t.Fatalf("findings %+v; want the loop with its mounts noted", fs)
	}
	if !strings.Contains(fs[0].Summary, "invalid argument") || fs[0].Evidence.Vars["rate"] != "5.0" {
		t.Errorf("summary %q rate %q; want the engine's error and 5 per hour", fs[0].Summary, fs[0].Evidence.Vars["rate"])
	}
}

// docker compose ps (v2.6): lower-case states, no IMAGE, an empty PORTS
// cell; every row is read by its name.
func TestDockerComposePS(t *testing.T) {
	b, err := os.ReadFile("testdata/docker-compose-ps.txt")
	if err != nil {
		t.Fatal(err)
	}
	rows, skipped := parseDockerPS(strings.Split(string(b), "\n"))
	var names []string
	for _, r := range rows {
		names = append(names, r.Name+"/"+r.State+"/"+r.Health)
	}
	want := "docspell-consumedir/running/ docspell-joex/running/healthy docspell-restserver/running/healthy docspell-solr/running/healthy postgres_db/running/"
	if strings.Join(names, " ") != want || len(skipped) != 2 {
		t.Errorf("rows %q, skipped %q; want %s and the source and prompt lines skipped", names, skipped, want)
	}
}
