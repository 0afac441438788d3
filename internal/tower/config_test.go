package tower

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeYAML returns the first YAML block after a README heading, with
// /etc/hinomi/ (where the examples keep their secret files) moved to a
// directory holding such files.
func readmeYAML(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, heading)
	if i < 0 {
		t.Fatalf("README lacks the section %q", heading)
	}
	block := readme[i:]
	start := strings.Index(block, "```yaml\n") + len("```yaml\n")
	end := strings.Index(block[start:], "```")
	dir := t.TempDir()
	for _, name := range []string{"api_token", "discord_url", "smtp_password", "console_password_hash"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name+"-0123456789abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(block[start:start+end], "/etc/hinomi/", dir+"/")
}

// TestREADMEMinimalConfig: the first tower example in the README works.
func TestREADMEMinimalConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(readmeYAML(t, "## Tower and agents")), "README.md")
	if err != nil {
		t.Fatalf("the README's minimal config does not load: %v", err)
	}
	if cfg.APIToken != "api_token-0123456789abcdef" {
		t.Errorf("api_token %q, want the file's content without its newline", cfg.APIToken)
	}
}

// TestREADMEExampleConfig: the routing example in the README works as
// written.
func TestREADMEExampleConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(readmeYAML(t, "### Routing, silences, maintenance windows, dependencies")), "README.md")
	if err != nil {
		t.Fatalf("the README's example config does not load: %v", err)
	}
	if len(cfg.Routes) != 2 || len(cfg.Maintenance) != 1 || len(cfg.Dependencies) != 1 || len(cfg.Channels) != 3 {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestProbeConfigErrorsNameLine(t *testing.T) {
	cfg := `data_dir: /tmp/x
agents:
  - {name: pve1, token: aaaaaaaaaaaaaaaaaaaa}
probes:
  - name: web
    type: http
    target: http://127.0.0.1:9/
    conditions:
      - "[STATUS] == 200"
      - "[BODY].status == up)"
  - name: dns
    type: dns
    target: example.lan
    record_type: BOGUS
`
	_, err := ParseConfig([]byte(cfg), "tower.yaml")
	if err == nil {
		t.Fatal("bad probes accepted")
	}
	for _, want := range []string{"tower.yaml", "line 10: probes.0.conditions.1:", `unexpected ")"`, "line 11: probes.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestREADMEProbeConfig: the probes example in the README loads.
func TestREADMEProbeConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: [{name: pve1, token: aaaaaaaaaaaaaaaaaaaa}]\n"+readmeYAML(t, "### Deep probes and the status page")), "README.md")
	if err != nil {
		t.Fatalf("the README's probe example does not load: %v", err)
	}
	if len(cfg.Probes) != 3 || cfg.Probes[2].Host != "pve1" || !cfg.Probes[0].Public {
		t.Errorf("parsed %+v", cfg.Probes)
	}
}

// The decoder's type errors are told in the config's terms, not Go's.
func TestConfigTypeErrorsInPlainWords(t *testing.T) {
	_, err := ParseConfig([]byte("data_dir: /tmp/x\nbogus: 1\nagents:\n  - {name: a, token: aaaaaaaaaaaaaaaaaaaa, colour: red}\nprobes:\n  - {name: p, type: tcp, target: \"127.0.0.1:9\", interval: 30}\n"), "t.yaml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`t.yaml: line 2: unknown field "bogus" at the top level`,
		`line 4: unknown field "colour" in an agent`,
		`line 6: 30 is not a duration: give a unit, e.g. 30s or 5m`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "in type") || strings.Contains(err.Error(), "!!int") {
		t.Errorf("error speaks Go: %v", err)
	}
}
