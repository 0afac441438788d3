package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hinomi/hinomi/internal/testload"
)

// TestScratchImageSeesTheHost builds deploy/Dockerfile (FROM scratch, the
// static binary alone) and runs doctor in it the way the Dockerfile's
// header documents for the agent: in the host's PID namespace.
// It must see this host's processes, this test's among them.
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
	const tag = "hinomi:test"
	testload.BuildImage(t, tag, map[string][]byte{"Dockerfile": dockerfile, "hinomi": bin})
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
}
