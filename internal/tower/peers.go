package tower

import (
	"context"
	"encoding/json"
	"io"
	"maps"
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

// view is a copy of what is known of the peers, for an evaluation.
func (p *peerState) view() peerView {
	p.mu.Lock()
	defer p.mu.Unlock()
	return peerView{lastOK: maps.Clone(p.lastOK), degraded: maps.Clone(p.degraded)}
}

// peerSignals are the alerts about silent peers.
func (e *evaluation) peerSignals(flap alerting.FlapRule) []signal {
	now, cfg := e.now, e.cfg
	var out []signal
	for _, p := range cfg.Peers {
		al := e.alertFor("peer/"+p.Name, p.Name, "peer", "Tower "+p.Name+" is unreachable", "catastrophic", "FM-A1")
		// A peer gets its grace from our own start or resume.
		last := e.judgedSince(e.peers.lastOK[p.Name], al)
		al.Summary = "Tower " + cfg.Name + " has had no answer from its peer " + p.Name + " (" + p.URL + ") since " +
			last.UTC().Format("2006-01-02 15:04:05 MST") + "; while it is down this tower sends every alert."
		bad := now.Sub(last) > time.Duration(cfg.PeerGrace)
		if why := e.peers.degraded[p.Name]; why != "" && !bad {
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
	return senderPeer(t.peers.view(), now, cfg)
}

// senderPeer is the healthy peer that sends instead of a tower that
// knows its peers as v, if any.
func senderPeer(v peerView, now time.Time, cfg *Config) string {
	for _, p := range cfg.Peers {
		if p.Name < cfg.Name && now.Sub(v.lastOK[p.Name]) <= time.Duration(cfg.PeerGrace) && v.degraded[p.Name] == "" {
			return p.Name
		}
	}
	return ""
}
