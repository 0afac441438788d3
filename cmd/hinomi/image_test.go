package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/testload"
)

// TestScratchImageSeesTheHost builds deploy/Dockerfile (FROM scratch, the
// static binary and the build host's CA certificates) and runs doctor in it
// the way the Dockerfile's header documents for the agent: in the host's
// PID namespace. It must see this host's processes, this test's among
// them. In the same image, the README's maintenance window (a time zone)
// loads and TLS servers can be verified.
func TestScratchImageSeesTheHost(t *testing.T) {
	testload.RequireDocker(t)
	root, err := testload.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(hinomiBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	// The build step the Dockerfile documents: the build host's CA bundle.
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the build host's CA bundle (package ca-certificates): %v", err)
	}
	// The README's maintenance window, and an HTTPS channel.
	const towerYAML = `data_dir: /var/lib/hinomi-tower
agents: [{name: nas1, token: 5e3c1a9f7d5b3e1c9a7f5d3b}]
channels: [{name: chat, type: discord, url: "https://discord.com/api/webhooks/123/abc"}]
maintenance:
  - {name: backups, match: {host: nas1}, days: [sun], start: "02:00", duration: 2h, time_zone: Europe/Berlin}
`
	tag := fmt.Sprintf("hinomi-image-test:%d", os.Getpid())
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", tag).Run() })
	testload.BuildImage(t, tag, map[string][]byte{
		"Dockerfile":          append(dockerfile, "\nCOPY tower.yaml /etc/hinomi/tower.yaml\n"...),
		"hinomi":              bin,
		"ca-certificates.crt": ca,
		"tower.yaml":          []byte(towerYAML),
	})
	// The Dockerfile documents --privileged; this machine kind refuses
	// privileged containers (its sandbox cannot grant every capability), so
	// the test grants what doctor needs to read other processes' fds.
	out, errOut, code := testload.RunToExit(t, tag, true, []string{"SYS_PTRACE", "DAC_READ_SEARCH"}, "doctor", "--json", "--sample", "0")
	if code != 0 && code != 1 {
		t.Fatalf("doctor in the image: exit %d\n%s", code, errOut)
	}
	var r struct {
		Processes int      `json:"processes"`
		Blind     []string `json:"could_not_see"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	ents, _ := os.ReadDir("/proc")
	host := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			host++
		}
	}
	if r.Processes < host/2 {
		t.Errorf("doctor in the container saw %d processes, the host has %d: not the host's PID namespace", r.Processes, host)
	}
	_, _, code = testload.RunToExit(t, tag, false, nil, "version")
	if code != 0 {
		t.Errorf("hinomi version in the image: exit %d", code)
	}

	out, errOut, code = testload.RunToExit(t, tag, false, nil, "tower", "--check", "--config", "/etc/hinomi/tower.yaml")
	if code != 0 || !strings.Contains(out, ": ok") {
		t.Errorf("the README's maintenance window in the image: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "no CA certificates") {
		t.Errorf("the image has no CA certificates:\n%s", out)
	}
}

// TestTowerCheckWarnsWithoutCARoots: the warning the image test relies on
// is given where no CA certificates are found.
func TestTowerCheckWarnsWithoutCARoots(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+dir+"\nagents: [{name: nas1, token: 5e3c1a9f7d5b3e1c9a7f5d3b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, roots := range []bool{true, false} {
		cmd := exec.Command(hinomiBinary(t), "tower", "--check", "--config", cfg)
		if !roots {
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(dir, "none"), "SSL_CERT_DIR="+filepath.Join(dir, "none"))
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tower --check: %v\n%s", err, out)
		}
		if warned := strings.Contains(string(out), "no CA certificates"); warned == roots {
			t.Errorf("with CA certificates %v: %s", roots, out)
		}
	}
}
