package tower

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
)

// Towers watch each other. Each tower polls its peers; one that stops
// answering for peer_grace is an alert sent through this tower's own
// channels. Towers that share agents do not page twice: of the towers that
// are up, the one whose name sorts first sends; the others record the same
// alerts and stay quiet while it answers.

// PeerConfig is another tower.
type PeerConfig struct {
	Name      string `yaml:"name"`
	URL       string `yaml:"url"`
	Token     string `yaml:"token"` // the peer's peer_token
	TokenFile string `yaml:"token_file"`
}

const peerPoll = 2 * time.Second

type peerState struct {
	mu     sync.Mutex
	lastOK map[string]time.Time
	// degraded is why a peer says it is degraded ("" when it is not).
	degraded map[string]string
}

func (p *peerState) setDegraded(name, why string) {
	p.mu.Lock()
	if p.degraded == nil {
		p.degraded = map[string]string{}
	}
	p.degraded[name] = why
	p.mu.Unlock()
}

func (p *peerState) degradedWhy(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.degraded[name]
}

func (p *peerState) seen(name string, at time.Time) {
	p.mu.Lock()
	p.lastOK[name] = at
	p.mu.Unlock()
}

func (p *peerState) last(name string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastOK[name]
}

// pollPeers asks every peer how it is, until ctx is done.
func (t *Tower) pollPeers(ctx context.Context) {
	client := &http.Client{Timeout: peerPoll}
	tick := time.NewTicker(peerPoll)
	defer tick.Stop()
	for {
		cfg := t.cfg.Load()
		for _, p := range cfg.Peers {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.URL, "/")+"/api/v1/peer", nil)
			if err != nil {
				continue
			}
			req.Header.Set("Authorization", "Bearer "+p.Token)
			resp, err := client.Do(req)
			if err == nil {
				var body struct {
					Probes   map[string]probeVerdict `json:"probes"`
					Degraded string                  `json:"degraded"`
				}
				if resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&body) == nil {
					t.peers.seen(p.Name, t.now())
					t.peers.setDegraded(p.Name, body.Degraded)
					t.setPeerVerdicts(p.Name, body.Probes)
				}
				resp.Body.Close()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handlePeer answers a peer's poll.
func (t *Tower) handlePeer(w http.ResponseWriter, r *http.Request) {
	cfg := t.cfg.Load()
	got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if cfg.PeerToken == "" || !constantTimeEqual(got, cfg.PeerToken) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "peer token required"})
		return
	}
	why, _ := t.degradedReason()
	writeJSON(w, http.StatusOK, map[string]any{"name": cfg.Name, "time": t.now(), "probes": t.ownVerdicts(), "degraded": why})
}

// peerSignals are the alerts about silent peers. t.mu is held.
func (t *Tower) peerSignals(now time.Time, cfg *Config, flap alerting.FlapRule) []signal {
	var out []signal
	for _, p := range cfg.Peers {
		al := t.alertFor("peer/"+p.Name, p.Name, "peer", "Tower "+p.Name+" is unreachable", "catastrophic", "FM-A1")
		// A peer gets its grace from our own start or resume.
		last := t.judgedSince(t.peers.last(p.Name), now, al)
		al.Summary = "Tower " + cfg.Name + " has had no answer from its peer " + p.Name + " (" + p.URL + ") since " +
			last.UTC().Format("2006-01-02 15:04:05 MST") + "; while it is down this tower sends every alert."
		bad := now.Sub(last) > time.Duration(cfg.PeerGrace)
		if why := t.peers.degradedWhy(p.Name); why != "" && !bad {
			// It answers but cannot store or send: page for it.
			bad = true
			al.Title = "Tower " + p.Name + " is degraded: " + why
			al.Summary = "Tower " + p.Name + " says: " + why + ". It cannot store reports, alerts or notifications; this tower's channels carry its page."
		}
		out = append(out, signal{alert: al, obs: alerting.Observation{Bad: bad, BadSince: last},
			rule: alerting.Rule{RepeatInterval: time.Duration(cfg.Alerts.RepeatInterval), Flap: flap}})
	}
	return out
}

// senderPeer is the healthy peer that sends instead of this tower, if any.
func (t *Tower) senderPeer(now time.Time, cfg *Config) string {
	for _, p := range cfg.Peers {
		if p.Name < cfg.Name && now.Sub(t.peers.last(p.Name)) <= time.Duration(cfg.PeerGrace) && t.peers.degradedWhy(p.Name) == "" {
			return p.Name
		}
	}
	return ""
}

// handlePeers shows what this tower knows of its peers.
func (t *Tower) handlePeers(w http.ResponseWriter, _ *http.Request) {
	cfg := t.cfg.Load()
	now := t.now()
	type view struct {
		Name    string    `json:"name"`
		URL     string    `json:"url"`
		LastOK  time.Time `json:"last_ok,omitzero"`
		Healthy bool      `json:"healthy"`
	}
	out := []view{}
	for _, p := range cfg.Peers {
		last := t.peers.last(p.Name)
		out = append(out, view{Name: p.Name, URL: p.URL, LastOK: last, Healthy: !last.IsZero() && now.Sub(last) <= time.Duration(cfg.PeerGrace)})
	}
	t.mu.Lock()
	verdicts := map[string]map[string]probeVerdict{}
	for k, v := range t.peerProbes {
		verdicts[k] = v
	}
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"name": cfg.Name, "peers": out, "sender": t.senderPeer(now, cfg) == "", "probe_verdicts": verdicts})
}
