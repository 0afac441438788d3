package tower

import (
	"encoding/json"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hinomi/hinomi/internal/wire"
)

// Handler is the tower's HTTP API:
//
//	POST /api/v1/ingest     agents' batches (agent token)
//	GET  /api/v1/hosts      hosts and when each last reported
//	GET  /api/v1/findings   open findings (?host=)
//	GET  /api/v1/alerts     alerts (?key=, ?status=)
//	GET  /api/v1/probes     every probe, private ones too, with its target
//	POST /api/v1/alerts/ack {key, by, comment}
//	GET, POST /api/v1/silences; DELETE /api/v1/silences/{id}
//	GET  /api/v1/incidents[/{id}[/postmortem]]; POST /api/v1/incidents/{id}/notes
//	GET, POST /api/v1/incident-updates  the status page's written updates {thread, incident, title, status, message, services, by}
//	GET  /api/v1/peer       a peer's poll (peer token)
//	GET  /metrics           Prometheus metrics (api_token or metrics.token, unless metrics.public)
//	GET  /healthz           200 "ok" when the tower runs, 503 with the reason when degraded; open to anyone
//
// Every /api/v1/ endpoint but ingest and peer wants the api_token as a
// bearer token, always: a tower without one keeps its API shut. Requests
// with a body must be application/json, so that a browser cannot send one
// from another site without a CORS preflight.
func (t *Tower) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(wire.Path, t.handleIngest)
	mux.HandleFunc("GET /api/v1/hosts", t.read(t.handleHosts))
	mux.HandleFunc("GET /api/v1/findings", t.read(t.handleFindings))
	mux.HandleFunc("GET /api/v1/alerts", t.read(t.handleAlerts))
	mux.HandleFunc("GET /api/v1/probes", t.read(t.handleProbes))
	mux.HandleFunc("POST /api/v1/alerts/ack", t.read(t.handleAck))
	mux.HandleFunc("/api/v1/silences", t.read(t.handleSilences))
	mux.HandleFunc("DELETE /api/v1/silences/{id}", t.read(t.handleSilenceDelete))
	mux.HandleFunc("GET /api/v1/incidents", t.read(t.handleIncidents))
	mux.HandleFunc("GET /api/v1/incidents/{id}", t.read(t.handleIncident))
	mux.HandleFunc("GET /api/v1/incidents/{id}/postmortem", t.read(t.handleIncident))
	mux.HandleFunc("POST /api/v1/incidents/{id}/notes", t.read(t.handleIncident))
	mux.HandleFunc("GET /api/v1/incident-updates", t.read(t.handleIncidentUpdates))
	mux.HandleFunc("POST /api/v1/incident-updates", t.read(t.handleIncidentUpdates))
	mux.Handle("GET /metrics", t.metricsHandler())
	mux.HandleFunc("GET /api/v1/peer", t.handlePeer)
	mux.HandleFunc("GET /api/v1/peers", t.read(t.handlePeers))
	mux.HandleFunc("GET /healthz", t.handleHealth)
	mux.Handle("/push/", t.pushHandler())
	return mux
}

// read guards every API endpoint, reading or writing: the api_token as a
// bearer token, and a JSON body on anything that sends one.
func (t *Tower) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := t.cfg.Load().APIToken
		if tok == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "this tower's API is shut: it has no api_token. " + makeTokenHint})
			return
		}
		if !bearerIs(r, tok) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "api token required (Authorization: Bearer <api_token>)"})
			return
		}
		if hasBody(r) && !isJSON(r.Header.Get("Content-Type")) {
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send the body as Content-Type: application/json"})
			return
		}
		h(w, r)
	}
}

// makeTokenHint says how to give a tower an API token.
const makeTokenHint = `Make one with "openssl rand -hex 32 > /etc/hinomi/api_token" and name it in tower.yaml as "api_token_file: /etc/hinomi/api_token" (or api_token: <the token>); clients send it as HINOMI_API_TOKEN.`

func bearerIs(r *http.Request, tok string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && tok != "" && constantTimeEqual(got, tok)
}

// hasBody: a state-changing request, or any request that carries a body.
func hasBody(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return true
	}
	return r.ContentLength > 0 || len(r.TransferEncoding) > 0
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// metricsHandler serves /metrics to a scraper with the api_token or the
// metrics token; with metrics.public, to anyone, but without the series
// of probes that are not public (their names say what runs where).
func (t *Tower) metricsHandler() http.Handler {
	all := promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{})
	public := promhttp.HandlerFor(t.publicMetrics, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := t.cfg.Load()
		switch {
		case bearerIs(r, cfg.APIToken) || bearerIs(r, cfg.Metrics.Token):
			all.ServeHTTP(w, r)
		case cfg.Metrics.Public:
			public.ServeHTTP(w, r)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="hinomi tower metrics"`)
			http.Error(w, "metrics token required (Authorization: Bearer <metrics.token or api_token>), or set metrics.public: true", http.StatusUnauthorized)
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// HostView is a host as the API shows it.
type HostView struct {
	Host
	Silent bool   `json:"silent"`
	Status string `json:"status"` // ok, silent, unknown
}

func (t *Tower) handleHosts(w http.ResponseWriter, _ *http.Request) {
	cfg := t.cfg.Load()
	t.mu.Lock()
	var out []HostView
	for _, a := range cfg.Agents {
		v := HostView{Host: Host{Name: a.Name}, Status: "unknown"}
		if h := t.hosts[a.Name]; h != nil {
			v.Host = *h
			v.Status = "ok"
			if al := t.alerts["heartbeat/"+a.Name]; al != nil && al.State.Status == "firing" {
				v.Silent, v.Status = true, "silent"
			}
		}
		out = append(out, v)
	}
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"hosts": out})
}

func (t *Tower) handleFindings(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Query().Get("host")
	t.mu.Lock()
	out := []Finding{}
	for h, fs := range t.findings {
		if host != "" && h != host {
			continue
		}
		for _, f := range fs {
			out = append(out, *f)
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Finding.Severity != out[j].Finding.Severity {
			return out[i].Finding.Severity > out[j].Finding.Severity
		}
		return out[i].Host+out[i].Finding.Key < out[j].Host+out[j].Finding.Key
	})
	writeJSON(w, http.StatusOK, map[string]any{"findings": out})
}

func (t *Tower) handleAlerts(w http.ResponseWriter, r *http.Request) {
	key, status := r.URL.Query().Get("key"), r.URL.Query().Get("status")
	now := t.now()
	type view struct {
		Alert
		DurationSeconds float64 `json:"duration_seconds"`
	}
	t.mu.Lock()
	out := []view{}
	for _, a := range t.alerts {
		if key != "" && a.Key != key || status != "" && string(a.State.Status) != status {
			continue
		}
		if key == "" && status == "" && a.State.Status == "ok" {
			continue
		}
		out = append(out, view{Alert: *a, DurationSeconds: a.State.Downtime(now).Seconds()})
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
}

// ProbeView is one configured probe and its latest result.
type ProbeView struct {
	Name     string    `json:"name"`
	Group    string    `json:"group,omitempty"`
	Type     string    `json:"type"`
	Target   string    `json:"target"`
	Interval string    `json:"interval"`
	Public   bool      `json:"public"`
	Host     string    `json:"host,omitempty"`
	Status   string    `json:"status"` // up, degraded, down; unknown before the first run
	Since    time.Time `json:"since,omitzero"`
	LastRun  time.Time `json:"last_run,omitzero"`
	Millis   float64   `json:"duration_ms"`
	Message  string    `json:"message,omitempty"`
	Failing  int       `json:"failed_runs_in_a_row"`
	Good     int       `json:"good_runs_in_a_row"`
	AlertKey string    `json:"alert_key"`
}

func (t *Tower) handleProbes(w http.ResponseWriter, _ *http.Request) {
	cfg := t.cfg.Load()
	out := make([]ProbeView, 0, len(cfg.Probes))
	t.mu.Lock()
	for _, p := range cfg.Probes {
		v := ProbeView{Name: p.Name, Group: p.Group, Type: string(p.Type), Target: p.Target, Interval: p.Interval.String(),
			Public: p.Public, Host: p.Host, Status: "unknown", AlertKey: "probe/" + p.Name}
		if r, ok := t.probes[p.Name]; ok {
			v.Status, v.Since, v.LastRun, v.Millis, v.Message = r.Status, t.probeSince[p.Name], r.Started, float64(r.Duration.Microseconds())/1000, r.Message
			st := t.probeStreaks[p.Name]
			v.Failing, v.Good = st.down, st.good
		}
		out = append(out, v)
	}
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"probes": out})
}
