package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/tower"
)

// TestGatusRealConfigs imports real Gatus configurations (from Gatus's
// repository and its issues: the source is each file's first line) and
// checks that the tower accepts what was written, and what was left out.
func TestGatusRealConfigs(t *testing.T) {
	for _, tc := range []struct {
		file     string
		probes   []string // names, in order
		channels int
		routes   int
		skipped  []string // in the skipped list, "what: why"
	}{
		{"gatus-readme-config.yaml", []string{"front-end", "back-end", "monitoring", "nas", "example-dns-query", "icmp-ping", "check-domain-expiration"}, 0, 0, nil},
		{"gatus-example-kubernetes.yaml", []string{"website", "github", "cat-fact", "example"}, 0, 0, nil},
		{"gatus-example-mattermost.yaml", []string{"example"}, 1, 1, nil},
		{"gatus-pr271-discord.yaml", []string{"website", "back-end"}, 1, 1,
			[]string{"alerting provider discord overrides: group-specific overrides are not imported"}},
		{"gatus-issue768-anchors.yaml", []string{"Google"}, 1, 1,
			[]string{`external endpoint "ext-ep-test": pushed results (external endpoints) are not imported yet`}},
		{"gatus-issue1378-github.yaml", []string{"ÖzgürSözlük"}, 0, 0,
			[]string{"alerting provider github: hinomi has no github channel"}},
		{"gatus-readme-ssh-starttls.yaml", []string{"ssh-example", "starttls-smtp-example"}, 0, 0,
			[]string{`ssh login and command of endpoint "ssh-example": hinomi's ssh probe reads the server's banner; it does not log in to run a command`,
				`condition "[STATUS] == 0" of endpoint "ssh-example": hinomi's ssh probe reads the server's banner; it does not log in to run a command`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "gatus", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Gatus(data)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range r.Config.Probes {
				names = append(names, p.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.probes, ",") {
				t.Errorf("probes %v; want %v", names, tc.probes)
			}
			if len(r.Config.Channels) != tc.channels || len(r.Config.Routes) != tc.routes {
				t.Errorf("%d channels, %d routes; want %d, %d", len(r.Config.Channels), len(r.Config.Routes), tc.channels, tc.routes)
			}
			var skipped []string
			for _, s := range r.Skipped {
				skipped = append(skipped, s.What+": "+s.Why)
			}
			all := strings.Join(skipped, "\n")
			for _, want := range tc.skipped {
				if !strings.Contains(all, want) {
					t.Errorf("skipped list lacks %q:\n%s", want, all)
				}
			}
			if len(skipped) != len(tc.skipped) {
				t.Errorf("skipped %d things; want %d:\n%s", len(skipped), len(tc.skipped), all)
			}
			out, err := r.YAML(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tower.ParseConfig(out, "imported.yaml"); err != nil {
				t.Errorf("the tower refuses the import: %v\n%s", err, out)
			}
		})
	}
}

// TestGatusMapping checks each field's meaning on the README's config.
func TestGatusMapping(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "gatus", "gatus-readme-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Gatus(data)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Probe{}
	for _, p := range r.Config.Probes {
		byName[p.Name] = p
	}
	fe := byName["front-end"]
	if fe.Type != "http" || fe.Target != "https://twin.sh/health" || fe.Group != "core" || fe.Interval.String() != "5m" || !fe.KeepAlive ||
		strings.Join(fe.Conditions, ";") != "[STATUS] == 200;[BODY].status == UP;[RESPONSE_TIME] < 150" {
		t.Errorf("front-end = %+v", fe)
	}
	dns := byName["example-dns-query"]
	if dns.Type != "dns" || dns.Target != "example.com" || dns.RecordType != "A" || dns.Resolver != "8.8.8.8:53" ||
		len(dns.Conditions) != 2 {
		t.Errorf("example-dns-query = %+v", dns)
	}
	if p := byName["icmp-ping"]; p.Type != "icmp" || p.Target != "example.org" || p.KeepAlive {
		t.Errorf("icmp-ping = %+v", p)
	}
	// Gatus's domain expiry on an http endpoint: the same condition, read over RDAP.
	if p := byName["check-domain-expiration"]; p.Type != "http" || p.Target != "https://example.org/" ||
		strings.Join(p.Conditions, ";") != "[DOMAIN_EXPIRATION] > 720h" {
		t.Errorf("check-domain-expiration = %+v", p)
	}
}

// Gatus's ssh:// and starttls:// endpoints become ssh and smtp probes.
func TestGatusSSHAndSTARTTLS(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "gatus", "gatus-readme-ssh-starttls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Gatus(data)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Probe{}
	for _, p := range r.Config.Probes {
		byName[p.Name] = p
	}
	if p := byName["ssh-example"]; p.Type != "ssh" || p.Target != "example.com:22" || strings.Join(p.Conditions, ";") != "[CONNECTED] == true" {
		t.Errorf("ssh-example = %+v", p)
	}
	if p := byName["starttls-smtp-example"]; p.Type != "smtp" || p.Target != "smtp.gmail.com:587" || p.TLS != "starttls" ||
		strings.Join(p.Conditions, ";") != "[CONNECTED] == true;[CERTIFICATE_EXPIRATION] > 48h" || p.Timeout.String() != "5s" {
		t.Errorf("starttls-smtp-example = %+v", p)
	}
}

func TestGatusThresholdsAndRoutes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "gatus", "gatus-issue768-anchors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Gatus(data)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Config.Probes[0]
	// The provider's default-alert: 2 failures, 1 success; the endpoint's
	// settings came through a YAML merge key.
	if p.FailureThreshold != 2 || p.SuccessThreshold != 1 || p.Interval.String() != "1m" || len(p.Conditions) != 1 {
		t.Errorf("Google = %+v", p)
	}
	if len(r.Config.Routes) != 1 || r.Config.Routes[0].Match.Key != "probe/*" || r.Config.Routes[0].Channels[0] != "discord" {
		t.Errorf("routes = %+v", r.Config.Routes)
	}
}

func TestGatusBadInput(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "gatus", "gatus-issue263-broken.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Gatus(data); err == nil || !strings.Contains(err.Error(), "not a Gatus configuration") || !strings.Contains(err.Error(), "line") {
		t.Errorf("a config with an unclosed quote: %v; want an error naming the line", err)
	}
	for _, bad := range []string{"", "hello", "endpoints: 3", "{}"} {
		if _, err := Gatus([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// fuzz budget: 3000x (scripts/test runs each target for a count of executions)
func FuzzGatus(f *testing.F) {
	for _, name := range []string{"gatus-readme-config.yaml", "gatus-issue768-anchors.yaml", "gatus-pr271-discord.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "gatus", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Gatus(b)
		if err != nil {
			return
		}
		if _, err := r.YAML("fuzz"); err != nil {
			t.Fatalf("an accepted config cannot be written: %v", err)
		}
	})
}

// TestGatusConfigDirectory: the files of a configuration directory are
// merged as Gatus merges them.
func TestGatusConfigDirectory(t *testing.T) {
	var files [][]byte
	for _, f := range []string{"multi-global.yaml", "multi-backend.yaml", "multi-frontend.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "gatus", f))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	r, err := Gatus(files...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range r.Config.Probes {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); !strings.HasPrefix(got, "check-if-api-is-healthy,check-if-website-is-pingable,check-domain-expiration,") {
		t.Errorf("probes from three files: %s", got)
	}
	if _, err := Gatus(files[0], []byte("endpoints: [")); err == nil || !strings.Contains(err.Error(), "file 2") {
		t.Errorf("a broken second file: %v; want it named", err)
	}
}
