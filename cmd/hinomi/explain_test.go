package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/doctor"
)

// runHinomi runs the real binary with stdin, returning its output and
// exit status.
func runHinomi(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), hinomiBinary(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

const explainTestdata = "../../internal/explain/testdata/"

// The built binary explains a capture named on the command line and the
// same capture on standard input alike, in doctor's layout.
func TestExplainBinaryFileAndStdin(t *testing.T) {
	file := explainTestdata + "docker-ps-restarting.txt"
	out, errOut, code := runHinomi(t, nil, "explain", "--color", "never", file)
	if code != doctor.ExitFindings {
		t.Fatalf("exit %d; want 1 (findings)\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"docker-ps", "HIGH (1)", "FM-C4", "Container yyy-2012 (image xxx/yyy) is in a restart loop", "docker update --restart=no yyy-2012", "runbook: hinomi runbook FM-C4"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// A Windows paste with colours, on standard input.
	paste := strings.ReplaceAll("\x1b[32m$\x1b[0m docker ps -a\n"+string(b), "\n", "\r\n")
	sout, serr, scode := runHinomi(t, []byte(paste), "explain", "--color", "never", "-")
	if scode != doctor.ExitFindings || !strings.Contains(sout, "standard input (docker ps -a): docker-ps") || !strings.Contains(sout, "Container yyy-2012") {
		t.Errorf("stdin: exit %d\n%s%s", scode, sout, serr)
	}
}

func TestExplainBinaryJSON(t *testing.T) {
	out, errOut, code := runHinomi(t, nil, "explain", "--json",
		explainTestdata+"docker-info-swarm-error.txt", explainTestdata+"docker-info-warnings.txt")
	if code != doctor.ExitFindings {
		t.Fatalf("exit %d; want 1\n%s%s", code, out, errOut)
	}
	var r struct {
		Schema string `json:"schema"`
		Worst  string `json:"worst"`
		Inputs []struct {
			Name       string `json:"name"`
			Command    string `json:"command"`
			Host       string `json:"host"`
			Recognised bool   `json:"recognised"`
			Format     string `json:"format"`
			Findings   []struct {
				Key      string            `json:"key"`
				Mode     string            `json:"mode"`
				Severity string            `json:"severity"`
				Subject  string            `json:"subject"`
				Host     string            `json:"host"`
				Vars     map[string]string `json:"-"`
				Recover  []string          `json:"recover"`
			} `json:"findings"`
			Notes []string `json:"notes"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Schema != "hinomi.explain/v1" || r.Worst != "high" || len(r.Inputs) != 3 {
		t.Fatalf("schema %q worst %q, %d inputs; want hinomi.explain/v1, high, 3 (the source line, the docker info after the prompt, the other file)", r.Schema, r.Worst, len(r.Inputs))
	}
	in := r.Inputs[1]
	if !in.Recognised || in.Format != "docker-info" || in.Command != "docker info" || in.Host != "ubuntu" || len(in.Findings) != 1 {
		t.Fatalf("input %+v; want docker-info from the prompt on ubuntu, one finding", in)
	}
	f := in.Findings[0]
	if f.Key != "FM-D10/swarm node ubuntu" || f.Severity != "high" || f.Host != "ubuntu" || len(f.Recover) == 0 {
		t.Errorf("finding %+v; want FM-D10/swarm node ubuntu, high, on ubuntu, with recovery commands", f)
	}
	if r.Inputs[0].Recognised || !r.Inputs[2].Recognised || len(r.Inputs[2].Notes) == 0 {
		t.Errorf("inputs %+v; want the lone source line unrecognised and the warnings file read with notes", r.Inputs)
	}
}

func TestExplainBinaryRefuses(t *testing.T) {
	// Unknown text: the list of formats and the command of each, exit 2.
	_, errOut, code := runHinomi(t, []byte("hello, nothing to see here\n"), "explain")
	if code != doctor.ExitFailed || !strings.Contains(errOut, "not recognised; these are the formats I know:") ||
		!strings.Contains(errOut, "docker-ps") || !strings.Contains(errOut, "docker ps -a --no-trunc") {
		t.Errorf("unknown text: exit %d\n%s", code, errOut)
	}
	// --as forces a format; an unknown name lists the known ones.
	out, _, code := runHinomi(t, []byte("hello\n"), "explain", "--as", "docker-ps")
	if code != doctor.ExitFailed || !strings.Contains(out, "read as docker-ps, but no container rows") {
		t.Errorf("--as docker-ps on prose: exit %d\n%s", code, out)
	}
	_, errOut, code = runHinomi(t, nil, "explain", "--as", "nope", explainTestdata+"docker-ps-restarting.txt")
	if code != doctor.ExitFailed || !strings.Contains(errOut, `--as "nope": no such format`) {
		t.Errorf("--as nope: exit %d\n%s", code, errOut)
	}
	// Too big: refused with the limit said, nothing half-read.
	big := filepath.Join(t.TempDir(), "big.log")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x\n"), explainMaxBytes/2+1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runHinomi(t, nil, "explain", big)
	if code != doctor.ExitFailed || out != "" || !strings.Contains(errOut, "larger than 8 MiB") || !strings.Contains(errOut, "hinomi logs scan") {
		t.Errorf("big file: exit %d\n%s%s", code, out, errOut)
	}
	// Compressed: said, with the command that reads it.
	gz := filepath.Join(t.TempDir(), "kern.log.gz")
	if err := os.WriteFile(gz, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runHinomi(t, nil, "explain", gz)
	if code != doctor.ExitFailed || !strings.Contains(errOut, "gzip-compressed") || !strings.Contains(errOut, "hinomi logs scan "+gz) {
		t.Errorf("gzip file: exit %d\n%s", code, errOut)
	}
	// A clean capture exits 0; -h exits 0 and documents the flags.
	_, _, code = runHinomi(t, nil, "explain", explainTestdata+"docker-ps-healthy-mixed.txt")
	if code != doctor.ExitOK {
		t.Errorf("healthy docker ps: exit %d; want 0", code)
	}
	out, _, code = runHinomi(t, nil, "explain", "-h")
	if code != doctor.ExitOK || !strings.Contains(out, "-as NAME") || !strings.Contains(out, "hinomi.explain/v1") {
		t.Errorf("-h: exit %d\n%s", code, out)
	}
}
