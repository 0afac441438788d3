package explain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func swarmInput(t *testing.T, file string) *Input {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "swarm", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	return &Input{Name: file, Text: text, Lines: strings.Split(text, "\n"), Now: time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)}
}

// Each real capture is recognised as the command that printed it, with
// no flag, and explained with the live check's diagnosis.
func TestSwarmFormats(t *testing.T) {
	cases := []struct {
		file, format, key string
		notes             []string
	}{
		{"service-ps-seed002-drbd.txt", "docker-service-ps", "FM-C5/swarm service ldap", nil},
		{"service-ps-cwovp32-bind.txt", "docker-service-ps", "FM-C4/swarm service CW-OVP_web", nil},
		{"service-ps-swarmprom64-noheader.txt", "docker-service-ps", "FM-C4/swarm service mon_node-exporter", nil},
		{"service-ps-live-trunc.txt", "docker-service-ps", "FM-C4/swarm service swarm-probe-rej", []string{"without --no-trunc", "docker service ps --no-trunc swarm-probe-rej"}},
		{"service-ps-moby25912-trunc.txt", "docker-service-ps", "FM-C4/swarm service ecstatic_curran", []string{"docker service ps --no-trunc 6oqvnzqm5e6r73f766ce6g7z6"}},
		{"node-ls-seed002-down.txt", "docker-node-ls", "FM-D10/swarm node s-hive0", nil},
		{"node-ls-moby35109-noleader.txt", "docker-node-ls", "FM-D10/swarm managers", []string{"1 line could not be read"}},
		{"service-ls-docs6094.txt", "docker-service-ls", "FM-C4/swarm service just_kibana", nil},
		{"service-ls-ccoci959-indented.txt", "docker-service-ls", "FM-C4/swarm service testswarm", nil},
		{"node-ls-live.txt", "docker-node-ls", "", []string{"1 row read; nothing wrong"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			in := swarmInput(t, c.file)
			f, ok := Recognise(in, All())
			if !ok || f.Name != c.format {
				t.Fatalf("recognised as %q (%v); want %s", f.Name, ok, c.format)
			}
			res, err := f.Explain(in)
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != c.format {
				t.Errorf("result format %q", res.Format)
			}
			var keys []string
			found := c.key == ""
			for _, fd := range res.Findings {
				keys = append(keys, fd.Key)
				if fd.Key == c.key {
					found = true
					if fd.Runbook != fd.Mode || fd.Evidence.Vars["platform"] != "swarm" {
						t.Errorf("runbook %q vars %v", fd.Runbook, fd.Evidence.Vars)
					}
				}
			}
			if !found {
				t.Errorf("findings %q; want %s", keys, c.key)
			}
			all := strings.Join(res.Notes, "\n")
			for _, n := range c.notes {
				if !strings.Contains(all, n) {
					t.Errorf("notes lack %q: %q", n, res.Notes)
				}
			}
		})
	}
}

// A prompt line that the explain helper took out of the text still names
// the service in the advice.
func TestSwarmServicePSCommandFromPrompt(t *testing.T) {
	in := swarmInput(t, "service-ps-live-trunc.txt")
	var kept []string
	for _, l := range in.Lines {
		if !strings.HasPrefix(l, "#") {
			kept = append(kept, l)
		}
	}
	in.Lines, in.Text = kept, strings.Join(kept, "\n")
	for _, t2 := range []string{"docker service ps web", ""} {
		in.Command = t2
		res, err := swarmServicePS.Explain(in)
		if err != nil {
			t.Fatal(err)
		}
		want := "docker service ps --no-trunc web"
		if t2 == "" {
			want = "docker service ps --no-trunc swarm-probe-rej"
		}
		if !strings.Contains(strings.Join(res.Notes, "\n"), want) {
			t.Errorf("command %q: notes %q lack %q", t2, res.Notes, want)
		}
	}
}

// Text of another command is not claimed by the Swarm formats, and a
// Swarm format given it by force says it has no row.
func TestSwarmFormatsRefuseOtherText(t *testing.T) {
	b, err := os.ReadFile("/work/shared/samples/docker-5.txt")
	if err != nil {
		t.Skip(err)
	}
	text := string(b)
	in := &Input{Text: text, Lines: strings.Split(text, "\n"), Now: time.Now()}
	for _, f := range []Format{swarmServicePS, swarmNodeLS, swarmServiceLS} {
		if s := f.Detect(in); s != 0 {
			t.Errorf("%s claims docker system df with score %d", f.Name, s)
		}
		if _, err := f.Explain(in); err == nil {
			t.Errorf("%s explained docker system df", f.Name)
		}
	}
}
