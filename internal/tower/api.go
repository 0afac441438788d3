package tower

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/wire"
)

// api is the tower's HTTP side (this file, webbackend.go): the handlers
// of the API and the backend of the pages. It holds only what they read
// (the configuration, memState through its lock, the peers, the status
// page's services, the store for incidents' pasts) and changes state only
// through changer; ingest, push reports and /metrics are handlers the
// other parts give it.
type api struct {
	cfg       *atomic.Pointer[Config]
	now       func() time.Time
	log       *slog.Logger
	state     stateView
	peers     *peerState
	services  *services
	senders   *atomic.Pointer[map[string]notify.Sender]
	incidents incidentLog
	store     Store
	changes   changer
	// degraded is why the tower is degraded ("" when it is not); banner
	// what the status page's banner says (that, or the log store's
	// trouble).
	degraded func() (string, time.Time)
	banner   func() (string, time.Time)
	ingest   http.Handler
	// logIngest and logSearch are the log store's (logs.go, logsearch.go).
	logIngest http.Handler
	logSearch http.HandlerFunc
	push      http.Handler
	metrics   http.Handler

	// logs is the open log store (logs.go), for the console's log pages.
	logs func(context.Context) (logstore.Store, error)
}

// changer is what the HTTP side may change: acknowledgements, silences,
// incident notes and incident updates. Tower implements it; each call writes to the store
// before memState changes.
type changer interface {
	Acknowledge(ctx context.Context, key, by, comment string) (Alert, error)
	AddSilence(ctx context.Context, s Silence) (Silence, error)
	ExpireSilence(ctx context.Context, id string) error
	AddNote(ctx context.Context, id int64, by, text string) error
	PostIncidentUpdate(ctx context.Context, u IncidentUpdate) (IncidentUpdate, error)
}

// stateView is memState under the lock that guards it, for reading.
type stateView struct {
	mu *sync.Mutex
	s  *memState
}

// read calls f with the state locked; f must not change it or keep
// pointers into it.
func (v stateView) read(f func(*memState)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f(v.s)
}

// newAPI is the HTTP side of t.
func newAPI(t *Tower) *api {
	now := func() time.Time { return t.now() } // a test may set t.now after New
	state := stateView{mu: &t.mu, s: &t.memState}
	return &api{
		cfg: &t.cfg, now: now, log: t.log, state: state, peers: &t.peers, services: &t.services, senders: &t.senders,
		incidents: t.incLog, store: t.store, changes: t,
		degraded: t.degradedReason, banner: t.bannerReason, ingest: t.in, push: t.pushHandler(),
		logIngest: http.HandlerFunc(t.handleLogIngest), logSearch: t.handleLogSearch, logs: t.logStore,
		metrics: metricsHandler(&t.cfg, t.Registry, t.publicMetrics),
	}
}

// Handler is the tower's HTTP API:
//
//	POST /api/v1/ingest     agents' batches (agent token)
//	POST /api/v1/logs/ingest agents' log lines (agent token; logs.go)
//	GET  /api/v1/logs       search the log store (logsearch.go)
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
func (t *Tower) Handler() http.Handler { return t.http.handler() }

// handler is the mux of the API, built afresh for each caller.
func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(wire.Path, a.ingest)
	mux.Handle(wire.LinesPath, a.logIngest)
	mux.HandleFunc("GET /api/v1/logs", a.read(a.logSearch))
	mux.HandleFunc("GET /api/v1/hosts", a.read(a.handleHosts))
	mux.HandleFunc("GET /api/v1/findings", a.read(a.handleFindings))
	mux.HandleFunc("GET /api/v1/alerts", a.read(a.handleAlerts))
	mux.HandleFunc("GET /api/v1/probes", a.read(a.handleProbes))
	mux.HandleFunc("POST /api/v1/alerts/ack", a.read(a.handleAck))
	mux.HandleFunc("/api/v1/silences", a.read(a.handleSilences))
	mux.HandleFunc("DELETE /api/v1/silences/{id}", a.read(a.handleSilenceDelete))
	mux.HandleFunc("GET /api/v1/incidents", a.read(a.handleIncidents))
	mux.HandleFunc("GET /api/v1/incidents/{id}", a.read(a.handleIncident))
	mux.HandleFunc("GET /api/v1/incidents/{id}/postmortem", a.read(a.handleIncident))
	mux.HandleFunc("POST /api/v1/incidents/{id}/notes", a.read(a.handleIncident))
	mux.HandleFunc("GET /api/v1/incident-updates", a.read(a.handleIncidentUpdates))
	mux.HandleFunc("POST /api/v1/incident-updates", a.read(a.handleIncidentUpdates))
	mux.Handle("GET /metrics", a.metrics)
	mux.HandleFunc("GET /api/v1/peer", a.handlePeer)
	mux.HandleFunc("GET /api/v1/peers", a.read(a.handlePeers))
	mux.HandleFunc("GET /healthz", a.handleHealth)
	mux.Handle("/push/", a.push)
	return mux
}

// read guards every API endpoint, reading or writing: the api_token as a
// bearer token, and a JSON body on anything that sends one.
func (a *api) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := a.cfg.Load().APIToken
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

// ownVerdicts are this tower's latest probe results, for its peers.
func (a *api) ownVerdicts() map[string]probeVerdict {
	var out map[string]probeVerdict
	a.state.read(func(t *memState) { out = maps.Clone(t.ownProbes) })
	if out == nil {
		out = map[string]probeVerdict{}
	}
	return out
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
func metricsHandler(cfgs *atomic.Pointer[Config], reg, publicReg *prometheus.Registry) http.Handler {
	all := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	public := promhttp.HandlerFor(publicReg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := cfgs.Load()
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

func (a *api) handleHosts(w http.ResponseWriter, _ *http.Request) {
	cfg := a.cfg.Load()
	var out []HostView
	a.state.read(func(t *memState) {
		for _, ag := range cfg.Agents {
			v := HostView{Host: Host{Name: ag.Name}, Status: "unknown"}
			if h := t.hosts[ag.Name]; h != nil {
				v.Host = *h
				v.Status = "ok"
				if al := t.alerts["heartbeat/"+ag.Name]; al != nil && al.State.Status == "firing" {
					v.Silent, v.Status = true, "silent"
				}
			}
			out = append(out, v)
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"hosts": out})
}

func (a *api) handleFindings(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Query().Get("host")
	out := []Finding{}
	a.state.read(func(t *memState) {
		for h, fs := range t.findings {
			if host != "" && h != host {
				continue
			}
			for _, f := range fs {
				out = append(out, *f)
			}
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Finding.Severity != out[j].Finding.Severity {
			return out[i].Finding.Severity > out[j].Finding.Severity
		}
		return out[i].Host+out[i].Finding.Key < out[j].Host+out[j].Finding.Key
	})
	writeJSON(w, http.StatusOK, map[string]any{"findings": out})
}

func (a *api) handleAlerts(w http.ResponseWriter, r *http.Request) {
	key, status := r.URL.Query().Get("key"), r.URL.Query().Get("status")
	now := a.now()
	type view struct {
		Alert
		DurationSeconds float64 `json:"duration_seconds"`
	}
	out := []view{}
	a.state.read(func(t *memState) {
		for _, al := range t.alerts {
			if key != "" && al.Key != key || status != "" && string(al.State.Status) != status {
				continue
			}
			if key == "" && status == "" && al.State.Status == "ok" {
				continue
			}
			out = append(out, view{Alert: *al, DurationSeconds: al.State.Downtime(now).Seconds()})
		}
	})
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

func (a *api) handleProbes(w http.ResponseWriter, _ *http.Request) {
	cfg := a.cfg.Load()
	out := make([]ProbeView, 0, len(cfg.Probes))
	a.state.read(func(t *memState) {
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
	})
	writeJSON(w, http.StatusOK, map[string]any{"probes": out})
}

func (a *api) handleSilences(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		now := a.now()
		out := []Silence{}
		a.state.read(func(t *memState) {
			for _, s := range t.silences {
				if s.Ends.After(now) {
					out = append(out, s)
				}
			}
		})
		writeJSON(w, http.StatusOK, map[string]any{"silences": out})
	case http.MethodPost:
		var s Silence
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&s); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed silence: " + err.Error()})
			return
		}
		s, err := a.changes.AddSilence(r.Context(), s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusCreated, s)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET or POST"})
	}
}

func (a *api) handleSilenceDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.changes.ExpireSilence(r.Context(), r.PathValue("id")); err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"expired": r.PathValue("id")})
}

func (a *api) handleAck(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key     string `json:"key"`
		By      string `json:"by"`
		Comment string `json:"comment"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed: " + err.Error()})
		return
	}
	al, err := a.changes.Acknowledge(r.Context(), req.Key, req.By, req.Comment)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, al)
}

func (a *api) handleIncidents(w http.ResponseWriter, r *http.Request) {
	list, err := a.incidents.list(r.Context(), 100)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if list == nil {
		list = []Incident{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": list})
}

func (a *api) handleIncident(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "incident id is a number"})
		return
	}
	switch {
	case r.Method == http.MethodPost:
		var n Note
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&n); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed note: " + err.Error()})
			return
		}
		if err := a.changes.AddNote(r.Context(), id, n.By, n.Text); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"noted": strconv.FormatInt(id, 10)})
	case strings.HasSuffix(r.URL.Path, "/postmortem"):
		md, err := a.incidents.postmortem(r.Context(), id)
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		_, _ = w.Write([]byte(md))
	default:
		in, evs, err := a.incidents.timeline(r.Context(), id)
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"incident": in, "timeline": evs})
	}
}

// handlePeer answers a peer's poll.
func (a *api) handlePeer(w http.ResponseWriter, r *http.Request) {
	cfg := a.cfg.Load()
	got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if cfg.PeerToken == "" || !constantTimeEqual(got, cfg.PeerToken) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "peer token required"})
		return
	}
	why, _ := a.degraded()
	writeJSON(w, http.StatusOK, map[string]any{"name": cfg.Name, "time": a.now(), "probes": a.ownVerdicts(), "degraded": why})
}

// handlePeers shows what this tower knows of its peers.
func (a *api) handlePeers(w http.ResponseWriter, _ *http.Request) {
	cfg := a.cfg.Load()
	now := a.now()
	type view struct {
		Name    string    `json:"name"`
		URL     string    `json:"url"`
		LastOK  time.Time `json:"last_ok,omitzero"`
		Healthy bool      `json:"healthy"`
	}
	out := []view{}
	for _, p := range cfg.Peers {
		last := a.peers.last(p.Name)
		out = append(out, view{Name: p.Name, URL: p.URL, LastOK: last, Healthy: !last.IsZero() && now.Sub(last) <= time.Duration(cfg.PeerGrace)})
	}
	verdicts := map[string]map[string]probeVerdict{}
	a.state.read(func(t *memState) { maps.Copy(verdicts, t.peerProbes) })
	writeJSON(w, http.StatusOK, map[string]any{"name": cfg.Name, "peers": out, "sender": senderPeer(a.peers.view(), now, cfg) == "", "probe_verdicts": verdicts})
}

// handleHealth is /healthz: "ok", or 503 and why the tower is degraded.
func (a *api) handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if why, since := a.degraded(); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "degraded: %s (since %s)\n", why, since.UTC().Format(time.RFC3339))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
