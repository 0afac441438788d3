package tower

import (
	"crypto/rand"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hinomi/hinomi/internal/wire"
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
	yaml := block[start : start+end]
	dir := t.TempDir()
	for _, m := range regexp.MustCompile(`/etc/hinomi/([\w.-]+)`).FindAllStringSubmatch(yaml, -1) {
		content := m[1] + "-0123456789abcdef\n"
		if strings.HasSuffix(m[1], ".hash") {
			h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			content = string(h) + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, m[1]), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(yaml, "/etc/hinomi/", dir+"/")
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
	if len(cfg.Console.Users) != 1 || !strings.HasPrefix(cfg.Console.Users[0].PasswordHash, "$2a$") {
		t.Errorf("console users %+v, want mika with the hash from her file", cfg.Console.Users)
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

// A hash of a published password (the README's own example, a common
// password, the user's name) is refused at load, with what to do.
func TestConfigRefusesPublishedPasswordHashes(t *testing.T) {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	for _, tc := range []struct{ hash, password string }{
		{"$2a$12$xkZ/kFgWs5/jbArf3b6mdO05b/VXqJ9Ex.XLj2Yc2jtWN9u8IhuBC", "change this password"}, // the README's, until this version
		{hash("changeme"), "changeme"},
		{hash("admin"), "admin"},
		{hash("hinomi"), "hinomi"},
		{hash("a long password"), "a long password"},
		{hash("mika"), "mika"},
	} {
		_, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\nconsole:\n  users:\n    - {name: mika, password_hash: '"+tc.hash+"'}\n"), "tower.yaml")
		if err == nil || !strings.Contains(err.Error(), "line 5: console.users.0.password_hash: this is a hash of \""+tc.password+"\", a published password") ||
			!strings.Contains(err.Error(), "hinomi hash-password") {
			t.Errorf("hash of %q: %v, want it refused with how to make a new one", tc.password, err)
		}
	}
	if _, err := ParseConfig([]byte("data_dir: /tmp/x\nagents: [{name: a, token: "+tokenA+"}]\nconsole:\n  users:\n    - {name: mika, password_hash: '"+hash("mika's own 7 words nobody knows")+"'}\n"), "tower.yaml"); err != nil {
		t.Errorf("a hash of a private password: %v", err)
	}
}

// Every secret can live outside tower.yaml: in a file named by its *_file
// key (systemd's LoadCredential= puts them in $CREDENTIALS_DIRECTORY) or
// in the environment.
func TestConfigSecretsFromFilesAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"api_token": "api-token-from-a-file-0123\n", "metrics_token": "metrics-token-from-a-file\n", "pve1": "agent-token-from-a-file\n",
		"discord_url": "https://discord.com/api/webhooks/1/SECRET\n", "smtp_password": "SECRET smtp\n",
		"peer_token": "peer-token-from-a-file-0123\n", "tower_b": "tower-b-token-from-a-file\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	t.Setenv("HINOMI_TEST_BOT_TOKEN", "123456:SECRET-telegram")
	cfg, err := ParseConfig([]byte(`listen: 0.0.0.0:7450
data_dir: /tmp/x
api_token_file: ${CREDENTIALS_DIRECTORY}/api_token
metrics: {token_file: "${CREDENTIALS_DIRECTORY}/metrics_token"}
name: tower-a
peer_token_file: ${CREDENTIALS_DIRECTORY}/peer_token
peers: [{name: tower-b, url: "http://b.lan:7450", token_file: "${CREDENTIALS_DIRECTORY}/tower_b"}]
agents: [{name: pve1, token_file: "${CREDENTIALS_DIRECTORY}/pve1"}]
channels:
  - {name: chat, type: discord, url_file: "${CREDENTIALS_DIRECTORY}/discord_url"}
  - {name: mail, type: smtp, host: mail.lan, from: tower@lan, to: [ops@lan], username: tower, password_file: "${CREDENTIALS_DIRECTORY}/smtp_password"}
  - {name: tg, type: telegram, bot_token: "${HINOMI_TEST_BOT_TOKEN}", chat_id: "1"}
`), "tower.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{cfg.APIToken, "api-token-from-a-file-0123"}, {cfg.Metrics.Token, "metrics-token-from-a-file"},
		{cfg.Agents[0].Token, "agent-token-from-a-file"}, {cfg.PeerToken, "peer-token-from-a-file-0123"},
		{cfg.Peers[0].Token, "tower-b-token-from-a-file"}, {cfg.Channels[0].URL, "https://discord.com/api/webhooks/1/SECRET"},
		{cfg.Channels[1].Password, "SECRET smtp"}, {cfg.Channels[2].BotToken, "123456:SECRET-telegram"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}

	base := "data_dir: /tmp/x\nagents: [{name: pve1, token: " + tokenA + "}]\n"
	for _, tc := range []struct{ yaml, want string }{
		{base + "channels: [{name: chat, type: discord, url_file: " + dir + "/nope}]\n",
			"tower.yaml: line 3: channels.0.url_file: notify channel \"chat\" (discord): url_file: cannot read the secret file " + dir + "/nope: no such file or directory"},
		{"data_dir: /tmp/x\nagents:\n  - {name: pve1, token_file: " + dir + "/nope}\n",
			"tower.yaml: line 3: agents.0.token_file: cannot read the secret file " + dir + "/nope: no such file or directory"},
		{base + "api_token_file: " + dir + "\n", "line 3: api_token_file: cannot read the secret file " + dir + ": is a directory"},
		{base + "api_token: ${HINOMI_TEST_UNSET}\n", "line 3: api_token: the environment variable HINOMI_TEST_UNSET is not set"},
		{base + "api_token: x\napi_token_file: " + dir + "/api_token\n", "api_token_file: set either api_token or api_token_file, not both"},
	} {
		_, err := ParseConfig([]byte(tc.yaml), "tower.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %s", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

// TestConfigRefusesImpossibleDurations: negative lengths of time and a
// reminder every nanosecond are refused, each with its line and key.
func TestConfigRefusesImpossibleDurations(t *testing.T) {
	cfg := `data_dir: /tmp/x
agents:
  - name: pve1
    token: aaaaaaaaaaaaaaaaaaaa
    grace: -30s
alerts:
  repeat_interval: 1ns
  for: -1m
  flap:
    window: -1h
retention:
  max_age: -24h
peer_grace: -5s
channels:
  - {name: ops, type: webhook, url: "http://127.0.0.1:9/"}
routes:
  - channels: [ops]
    repeat_interval: 30s
    group_wait: -10s
`
	_, err := ParseConfig([]byte(cfg), "tower.yaml")
	if err == nil {
		t.Fatal("impossible durations accepted")
	}
	for _, want := range []string{
		"line 5: agents.0.grace: -30s is negative",
		"line 7: alerts.repeat_interval: 1ns is too short: at least 1m0s",
		"line 8: alerts.for: -1m0s is negative",
		"line 10: alerts.flap.window: -1h0m0s is negative",
		"line 12: retention.max_age: -24h0m0s is negative",
		"line 13: peer_grace: -5s is negative",
		"line 18: routes.0.repeat_interval: 30s is too short",
		"line 19: routes.0.group_wait: -10s is negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestIngestRefusesNumbersBeyondInt64AndClampsTimes: a sequence number or
// dropped count the database cannot hold is a clear 400, not a 503 the
// agent retries forever; a record dated in 2099 or 1970 is stored at the
// time the tower received it.
func TestIngestRefusesNumbersBeyondInt64AndClampsTimes(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	h := tw.Handler()
	for _, tt := range []struct {
		name string
		env  wire.Envelope
		want string
	}{
		{"seq 2^63", wire.Envelope{Agent: "pve1", Spool: "s1", Records: []wire.Record{{Seq: 1 << 63, Kind: wire.KindStatus, Time: c.Now(), Data: json.RawMessage(`{}`)}}}, "records[0]: seq 9223372036854775808 is beyond"},
		{"seq max", wire.Envelope{Agent: "pve1", Spool: "s1", Records: []wire.Record{{Seq: math.MaxUint64, Kind: wire.KindStatus, Time: c.Now(), Data: json.RawMessage(`{}`)}}}, "is beyond the largest sequence number the tower stores (2^63-1)"},
		{"dropped 2^63", wire.Envelope{Agent: "pve1", Spool: "s1", Dropped: 1 << 63}, "dropped 9223372036854775808 is beyond"},
	} {
		body, _ := json.Marshal(tt.env)
		rec, reply := post(t, h, tokenA, body)
		if rec.Code != 400 || !strings.Contains(reply.Error, tt.want) {
			t.Errorf("%s: %d %q, want 400 saying %q", tt.name, rec.Code, reply.Error, tt.want)
		}
	}
	if n := count(t, tw, "SELECT count(*) FROM records"); n != 0 {
		t.Errorf("%d records stored from refused batches", n)
	}

	env := wire.Envelope{Agent: "pve1", Spool: "s1", Records: []wire.Record{
		{Seq: 1, Kind: wire.KindStatus, Time: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), Data: json.RawMessage(`{"event":"cycle"}`)},
		{Seq: 2, Kind: wire.KindStatus, Time: time.Unix(0, 0), Data: json.RawMessage(`{"event":"cycle"}`)},
		{Seq: 3, Kind: wire.KindStatus, Time: c.Now().Add(-time.Hour), Data: json.RawMessage(`{"event":"cycle"}`)},
	}}
	body, _ := json.Marshal(env)
	if rec, reply := post(t, h, tokenA, body); rec.Code != 200 || reply.Acked != 3 {
		t.Fatalf("batch with a broken clock: %d %+v", rec.Code, reply)
	}
	for seq, want := range map[int]time.Time{1: c.Now(), 2: c.Now(), 3: c.Now().Add(-time.Hour)} {
		var got int64
		if err := dbOf(tw).QueryRow("SELECT time FROM records WHERE seq = ?", seq).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !time.Unix(0, got).Equal(want) {
			t.Errorf("record %d stored at %s, want %s", seq, time.Unix(0, got).UTC(), want)
		}
	}
}
