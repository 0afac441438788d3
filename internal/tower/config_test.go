package tower

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
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
		if err := tw.store.DB.QueryRow("SELECT time FROM records WHERE seq = ?", seq).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !time.Unix(0, got).Equal(want) {
			t.Errorf("record %d stored at %s, want %s", seq, time.Unix(0, got).UTC(), want)
		}
	}
}
