package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/tower"
)

func kumaFixture(t testing.TB) *Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "kuma", "backup-1.23.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Kuma(data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKumaBackup(t *testing.T) {
	r := kumaFixture(t)
	byName := map[string]Probe{}
	var names []string
	for _, p := range r.Config.Probes {
		byName[p.Name] = p
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "Home page,Shop,Maintenance page gone,API health,SSH pve1,Router,DNS example.org,Redirecting app" {
		t.Errorf("probes: %s", got)
	}
	for _, c := range []struct {
		name  string
		check func(p Probe) bool
	}{
		{"Home page", func(p Probe) bool {
			return p.Type == "http" && p.Group == "Websites" && p.FailureThreshold == 3 &&
				strings.Join(p.Conditions, ";") == "[STATUS] >= 200;[STATUS] <= 299" &&
				strings.Join(p.Degraded, ";") == "[CERTIFICATE_EXPIRATION] > 7d"
		}},
		{"Shop", func(p Probe) bool {
			return p.Interval.String() == "2m" && p.Timeout.String() == "20s" && p.Conditions[2] == `[BODY] contains "Add to cart"`
		}},
		{"Maintenance page gone", func(p Probe) bool { return p.Conditions[2] == `[BODY] not contains "We'll be back soon"` }},
		{"API health", func(p Probe) bool {
			return p.Conditions[2] == `[BODY].status == "ok"` && p.Headers["Accept"] == "application/json"
		}},
		{"SSH pve1", func(p Probe) bool { return p.Type == "tcp" && p.Target == "pve1.lan:22" }},
		{"Router", func(p Probe) bool {
			return p.Type == "icmp" && p.Target == "192.168.1.1" && p.Timeout.String() == "24s"
		}},
		{"DNS example.org", func(p Probe) bool {
			return p.Type == "dns" && p.RecordType == "AAAA" && p.Resolver == "9.9.9.9:53"
		}},
		{"Redirecting app", func(p Probe) bool {
			return p.FollowRedirects != nil && !*p.FollowRedirects && strings.HasPrefix(p.Conditions[0], "[STATUS] in (200, 201,") &&
				strings.HasSuffix(p.Conditions[0], "299, 301)")
		}},
	} {
		if p, ok := byName[c.name]; !ok || !c.check(p) {
			t.Errorf("%s = %+v", c.name, p)
		}
	}

	var chans []string
	for _, ch := range r.Config.Channels {
		chans = append(chans, ch.Name+"/"+ch.Type)
	}
	if got := strings.Join(chans, ","); got != "discord-ops/discord,telegram-owner/telegram,phone/ntfy,mail/smtp,pagerduty/pagerduty" {
		t.Errorf("channels: %s", got)
	}
	routes := map[string]string{}
	for _, rt := range r.Config.Routes {
		routes[rt.Match.Key] = strings.Join(rt.Channels, ",")
	}
	for key, want := range map[string]string{
		"probe/Home page": "discord-ops,telegram-owner", "probe/API health": "discord-ops,telegram-owner",
		"probe/Maintenance page gone": "phone", "probe/Router": "pagerduty",
	} {
		if routes[key] != want {
			t.Errorf("route %s → %q; want %q (all: %v)", key, routes[key], want, routes)
		}
	}
	if _, ok := routes["probe/DNS example.org"]; ok {
		t.Error("a monitor without notifications got a route")
	}

	var skipped []string
	for _, s := range r.Skipped {
		skipped = append(skipped, s.What+": "+s.Why)
	}
	want := []string{
		`notification "n8n hook": the webhook body Uptime Kuma posts is its own`,
		`notification "Old pushover": disabled in Uptime Kuma`,
		`monitor "Queue depth": its JSON query "$sum(queues.depth)" is a JSONata expression`,
		`monitor "Nightly backup": push monitors`,
		`monitor "Vaultwarden container": container monitors are not imported`,
		`monitor "Legacy app": paused in Uptime Kuma`,
		`monitor "Mosquitto": mqtt monitors are not probed by hinomi`,
	}
	all := strings.Join(skipped, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("skipped list lacks %q:\n%s", w, all)
		}
	}
	if len(skipped) != len(want) {
		t.Errorf("skipped %d; want %d:\n%s", len(skipped), len(want), all)
	}

	out, err := r.YAML("backup-1.23.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tower.ParseConfig(out, "imported.yaml"); err != nil {
		t.Errorf("the tower refuses the import: %v\n%s", err, out)
	}
}

func TestKumaBadInput(t *testing.T) {
	for _, bad := range []string{"", "[]", "{}", `{"monitorList": 3}`, `{"monitorList":[{"name":"x","active":"maybe"}]}`} {
		if _, err := Kuma([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	r, err := Kuma([]byte(`{"notificationList":[{"id":1,"name":"x","config":"{not json"}],"monitorList":[]}`))
	if err != nil || len(r.Skipped) != 1 || !strings.Contains(r.Skipped[0].Why, "not JSON") {
		t.Errorf("a notification with broken settings: %v %+v", err, r)
	}
}

func TestKumaStatusCodes(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, "[STATUS] >= 200;[STATUS] <= 299"},
		{[]string{"200"}, "[STATUS] == 200"},
		{[]string{"200", "204"}, "[STATUS] in (200, 204)"},
		{[]string{"x"}, "!"},
		{[]string{"300-200"}, "!"},
	} {
		got, why := kumaStatusConditions(c.in)
		if why != "" {
			got = []string{"!"}
		}
		if strings.Join(got, ";") != c.want {
			t.Errorf("%v → %v (%s); want %s", c.in, got, why, c.want)
		}
	}
}

// fuzz budget: 3000x (scripts/test runs each target for a count of executions)
func FuzzKuma(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "kuma", "backup-1.23.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Kuma(b)
		if err != nil {
			return
		}
		if _, err := r.YAML("fuzz"); err != nil {
			t.Fatalf("an accepted backup cannot be written: %v", err)
		}
	})
}
