package tower

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEExampleConfig: the routing example in the README works as
// written.
func TestREADMEExampleConfig(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "### Routing, silences, maintenance windows, dependencies")
	if i < 0 {
		t.Fatal("README lacks the routing section")
	}
	block := readme[i:]
	start := strings.Index(block, "```yaml\n") + len("```yaml\n")
	end := strings.Index(block[start:], "```")
	cfg, err := ParseConfig([]byte(block[start:start+end]), "README.md")
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
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "### Deep probes and the status page")
	if i < 0 {
		t.Fatal("README lacks the probes section")
	}
	block := readme[i:]
	start := strings.Index(block, "```yaml\n") + len("```yaml\n")
	end := strings.Index(block[start:], "```")
	cfg, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: [{name: pve1, token: aaaaaaaaaaaaaaaaaaaa}]\n"+block[start:start+end]), "README.md")
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
