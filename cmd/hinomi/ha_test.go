package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/testload"
	"github.com/hinomi/hinomi/internal/wire"
)

// haReceiver is a webhook receiver that counts what it gets by the
// outbox id each message carries (labels.outbox_id) and by alert.
type haReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	byID  map[string]int                 // outbox id → receipts
	byKey map[string]map[string]struct{} // key|status → outbox ids
	raw   int
}

func newHAReceiver(t *testing.T) *haReceiver {
	r := &haReceiver{byID: map[string]int{}, byKey: map[string]map[string]struct{}{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(req.Body).Decode(&p); err != nil || len(p.Alerts) == 0 {
			http.Error(w, "bad payload", 400)
			return
		}
		// A receiver that takes a moment, so that sends are still pending
		// when the leader dies.
		<-time.After(2 * time.Millisecond)
		l := p.Alerts[0].Labels
		r.mu.Lock()
		defer r.mu.Unlock()
		r.raw++
		r.byID[l["outbox_id"]]++
		k := l["key"] + "|" + p.Status
		if r.byKey[k] == nil {
			r.byKey[k] = map[string]struct{}{}
		}
		r.byKey[k][l["outbox_id"]] = struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// count is how many distinct messages about keys starting with prefix
// and of status arrived.
func (r *haReceiver) count(prefix, status string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, ids := range r.byKey {
		if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, "|"+status) {
			n += len(ids)
		}
	}
	return n
}

// leaderOf reports whether the tower at addr says it leads (/metrics).
func leaderOf(addr string) bool {
	resp, err := apiGet("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return bytes.Contains(b, []byte("\nhinomi_tower_leader 1\n"))
}

// TestTowersOnPostgresSurviveTheLeader: three towers (real processes) on
// one PostgreSQL, 100 simulated agents reporting to any of them. With 1,000
// notifications pending and 20 hosts falling silent, the leader is killed
// (SIGKILL): another takes over, every notification arrives, none twice
// (by outbox id; at most the one in flight at the kill may come again),
// and each silent host is paged once.
func TestTowersOnPostgresSurviveTheLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	pgURL := testload.PostgresSchema(t)
	recv := newHAReceiver(t)
	dir := t.TempDir()
	const agents, silenced, pending = 100, 20, 1000
	lease := 2 * time.Second
	var agentsYAML strings.Builder
	tokens := make([]string, agents)
	for i := range agents {
		tokens[i] = fmt.Sprintf("tok-ha-agent-%012d", i)
		fmt.Fprintf(&agentsYAML, "  - {name: a%03d, token: %s}\n", i, tokens[i])
	}
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	towers := make([]*proc, len(addrs))
	for i, addr := range addrs {
		path := filepath.Join(dir, fmt.Sprintf("tower-%d.yaml", i))
		cfg := fmt.Sprintf(`name: tower-%d
listen: %s
api_token: %s
data_dir: %s
store: %s
lease: %s
grace: 3s
alerts:
  never_reported: false
agents:
%schannels:
  - {name: hook, type: webhook, url: %s}
`, i, addr, testAPIToken, filepath.Join(dir, fmt.Sprintf("tower-%d", i)), pgURL, lease, agentsYAML.String(), recv.srv.URL)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		towers[i] = start(t, "tower", "--config", path)
	}
	for _, tw := range towers {
		tw.waitLine(t, regexp.MustCompile(`tower listening`), 30*time.Second)
	}

	// The agents: each reports every second to one tower, the next one
	// when that fails, until it is silenced or the test ends.
	ctx, stopAgents := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stopAgents(); wg.Wait() })
	silence := make(chan struct{})
	client := &http.Client{Timeout: 2 * time.Second}
	var codesMu sync.Mutex
	codes := map[string]int{}
	t.Cleanup(func() { codesMu.Lock(); t.Logf("ingest answers: %v", codes); codesMu.Unlock() })
	for i := range agents {
		wg.Go(func() {
			seq := uint64(0)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for n := i; ; {
				if i < silenced {
					select {
					case <-silence:
						return
					default:
					}
				}
				seq++
				env := wire.Envelope{Agent: fmt.Sprintf("a%03d", i), Spool: "s", Sent: time.Now(), Interval: time.Second,
					Records: []wire.Record{{Seq: seq, Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"cycle":1}`)}}}
				body, _ := json.Marshal(env)
				for try := 0; try < len(addrs); try++ {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addrs[n%len(addrs)]+wire.Path, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tokens[i])
					resp, err := client.Do(req)
					codesMu.Lock()
					if err != nil {
						codes["error"]++
					} else {
						codes[resp.Status]++
					}
					codesMu.Unlock()
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							break
						}
					}
					n++ // that tower is gone: the next
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}

	// The pending notifications: 1,000 rows queued at once, as an
	// evaluation that opened 1,000 alerts would.
	db, err := pgx.Connect(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var batch pgx.Batch
	now := time.Now()
	for i := range pending {
		m := notify.Message{Key: fmt.Sprintf("load/%04d", i), Title: fmt.Sprintf("load %d", i), State: notify.Firing, Severity: "high", Started: now, Now: now}
		data, _ := json.Marshal(m)
		batch.Queue("INSERT INTO outbox(channel, alert_key, created, message, next_attempt) VALUES('hook', $1, $2, $3, 0)", m.Key, now.UnixNano(), data)
	}
	if err := db.SendBatch(context.Background(), &batch).Close(); err != nil {
		t.Fatal(err)
	}

	// Kill the leader once it is sending.
	// Bounds sized for a machine loaded by the whole test run.
	deadline := time.Now().Add(120 * time.Second)
	for recv.count("load/", "firing") < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("the towers sent %d of %d notifications in 120 s", recv.count("load/", "firing"), pending)
		}
		<-time.After(20 * time.Millisecond)
	}
	leader := -1
	for i, addr := range addrs {
		if leaderOf(addr) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no tower says it leads while notifications are being sent")
	}
	close(silence) // new alerts arrive during the takeover
	killed := time.Now()
	sentBefore := recv.count("load/", "firing")
	towers[leader].kill(t)
	var takeover time.Duration
	for takeover == 0 {
		for i, addr := range addrs {
			if i != leader && leaderOf(addr) {
				takeover = time.Since(killed)
			}
		}
		if time.Since(killed) > 4*lease {
			t.Fatalf("no tower took over within %s (2 × lease is the goal)", 4*lease)
		}
		<-time.After(50 * time.Millisecond)
	}
	t.Logf("leader tower-%d killed with %d of %d notifications sent; tower took over after %s (lease %s)", leader, sentBefore, pending, takeover.Round(time.Millisecond), lease)
	fmt.Printf("takeover after the leader's SIGKILL: %s (lease %s)\n", takeover.Round(time.Millisecond), lease)

	deadline = time.Now().Add(180 * time.Second)
	for recv.count("load/", "firing") < pending || recv.count("heartbeat/", "firing") < silenced {
		if time.Now().After(deadline) {
			t.Fatalf("after the takeover: %d of %d notifications and %d of %d silent hosts arrived",
				recv.count("load/", "firing"), pending, recv.count("heartbeat/", "firing"), silenced)
		}
		<-time.After(50 * time.Millisecond)
	}
	// Anything sent twice would come within a send timeout (10 s) of its
	// first claim: watch a little past the bound, by polling the outbox
	// until it is empty and then once more.
	for {
		var due int
		if err := db.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE state = 'due'").Scan(&due); err != nil {
			t.Fatal(err)
		}
		if due == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still due", due)
		}
		<-time.After(100 * time.Millisecond)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	dups := 0
	for id, n := range recv.byID {
		if n > 1 {
			dups += n - 1
			t.Logf("outbox id %s received %d times", id, n)
		}
	}
	if dups > 1 {
		t.Errorf("%d messages received again; at most the one in flight at the kill may be", dups)
	}
	for i := range agents {
		ids := recv.byKey[fmt.Sprintf("heartbeat/a%03d|firing", i)]
		switch {
		case i < silenced && len(ids) != 1:
			t.Errorf("silent host a%03d paged %d times; want once", i, len(ids))
		case i >= silenced && len(ids) != 0:
			t.Errorf("host a%03d, which kept reporting, was paged silent %d times", i, len(ids))
		}
	}
	t.Logf("%d messages received, %d distinct, %d again", recv.raw, len(recv.byID), dups)
}

// TestTowerMigrateCommand: a real tower's SQLite state moved by `hinomi
// tower migrate` into PostgreSQL, and what it refuses.
func TestTowerMigrateCommand(t *testing.T) {
	pgURL := testload.PostgresSchema(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := filepath.Join(dir, "tower.yaml")
	const token = "tok-migrate-agent-aaaaaa"
	if err := os.WriteFile(cfg, []byte("listen: "+addr+"\ndata_dir: "+filepath.Join(dir, "data")+"\nagents:\n  - {name: pve1, token: "+token+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tw := start(t, "tower", "--config", cfg)
	tw.waitLine(t, regexp.MustCompile(`tower listening`), 30*time.Second)
	body, _ := json.Marshal(wire.Envelope{Agent: "pve1", Spool: "s1", Sent: time.Now(),
		Records: []wire.Record{{Seq: 1, Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"cycle":1}`)}, {Seq: 2, Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"cycle":2}`)}}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+wire.Path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %s", resp.Status)
	}
	tw.stop(t)

	bin := hinomiBinary(t)
	out, err := exec.Command(bin, "tower", "migrate", "--from", "sqlite:"+filepath.Join(dir, "data"), "--to", pgURL).CombinedOutput()
	if err != nil {
		t.Fatalf("tower migrate: %v\n%s", err, out)
	}
	for _, want := range []string{"hosts  1 rows", "records  2 rows", "copied; set store:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tower migrate said:\n%s\nwant a line with %q", out, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "sqlite:" + filepath.Join(dir, "data"), "--to", pgURL}, "already holds a tower's state"},
		{[]string{"--from", filepath.Join(dir, "data"), "--to", pgURL}, "--from must be sqlite:PATH"},
		{[]string{"--from", "sqlite:" + filepath.Join(dir, "nothing"), "--to", pgURL}, "--from:"},
		{[]string{"--from", "sqlite:" + filepath.Join(dir, "data"), "--to", "mysql://db"}, "--to must be a postgres:// URL"},
	} {
		out, err := exec.Command(bin, append([]string{"tower", "migrate"}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("tower migrate %v: %v\n%s\nwant an error with %q", tc.args, err, out, tc.want)
		}
	}
}
