package web

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configure the pages.
type Options struct {
	Title        string
	Users        []User
	SessionTTL   time.Duration
	SecureCookie bool
	// TrustedProxies are the addresses (or CIDR prefixes) of reverse
	// proxies whose X-Forwarded-For and X-Forwarded-Proto are believed.
	TrustedProxies []string
	Now            func() time.Time
	Log            *slog.Logger
	// Pages are the further status pages (read at every request, so a
	// reload applies at once); nil: only the main page.
	Pages func() []Page
}

// Site serves the pages.
type Site struct {
	b    Backend
	o    Options
	auth *auth
	tmpl *template.Template
	// bufs keeps rendering buffers between requests: a status page of 500
	// services is 4 MiB, which a fresh buffer grows to by copying and
	// zeroing twice that, and leaves to the garbage collector.
	bufs sync.Pool
}

// New builds the site.
func New(b Backend, o Options) (*Site, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Title == "" {
		o.Title = "Status"
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	t, err := template.New("").Funcs(funcs).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	proxies, err := ParseProxies(o.TrustedProxies)
	if err != nil {
		return nil, err
	}
	return &Site{b: b, o: o, auth: newAuth(o.Users, o.SessionTTL, o.SecureCookie, proxies, o.Log, o.Now), tmpl: t}, nil
}

// ParseProxies reads trusted proxies: addresses (10.0.0.5, ::1) or
// prefixes (10.0.0.0/24).
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an address such as 10.0.0.5 or a prefix such as 10.0.0.0/24", s)
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return out, nil
}

var funcs = template.FuncMap{
	"pct": func(v float64) string {
		if v < 0 {
			return "—"
		}
		return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return finding.HumanDuration(now.Sub(t)) + " ago"
	},
	"dur":   func(a, b time.Time) string { return finding.HumanDuration(b.Sub(a)) },
	"upper": strings.ToUpper,
	"bars":  daysSVG,
	"spark": latencySVG,
	"join":  strings.Join,
	// timeline links the cross-host log timeline before an instant.
	"timeline": TimelineHref,
}

// Handler serves the status page at /, badges at /badge/, the console at
// /console/ and static files at /static/.
func (s *Site) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.statusPage)
	mux.HandleFunc("GET /badge/{name}", s.badge)
	mux.HandleFunc("GET /badge/{name}/uptime", s.badge)
	mux.HandleFunc("GET /badge/{name}/response", s.badge)
	mux.HandleFunc("GET /feed.atom", s.feed)
	mux.HandleFunc("GET /status/{slug}", s.statusSubPage)
	mux.HandleFunc("GET /status/{slug}/logo", s.pageLogo)
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/login", s.loginPage)
	mux.HandleFunc("POST /console/login", s.loginPost)
	mux.HandleFunc("POST /console/logout", s.signedIn(s.logoutPost))
	mux.HandleFunc("GET /console/{$}", s.signedIn(s.consolePage))
	mux.HandleFunc("GET /console/incidents/{id}", s.signedIn(s.incidentPage))
	mux.HandleFunc("GET /console/incidents/{id}/postmortem", s.signedIn(s.postmortem))
	mux.HandleFunc("POST /console/ack", s.signedIn(s.ackPost))
	mux.HandleFunc("POST /console/silence", s.signedIn(s.silencePost))
	mux.HandleFunc("POST /console/channels/test", s.signedIn(s.testChannelPost))
	mux.HandleFunc("POST /console/updates", s.signedIn(s.updatePost))
	mux.HandleFunc("GET /console/logs", s.signedIn(s.logsPage))
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func (s *Site) render(w http.ResponseWriter, name string, data any) {
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= 32<<20 {
			buf.Reset()
			s.bufs.Put(buf)
		}
	}()
	if err := s.tmpl.ExecuteTemplate(buf, name, data); err != nil {
		s.o.Log.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

type groupView struct {
	Name     string
	Services []Service
}

type statusView struct {
	Title string
	// Description, Footer and Logo are a page's own (see Page).
	Description, Footer, Logo string
	// Pages links the further status pages from the main one.
	Pages       []pageLink
	Now         time.Time
	Overall     string
	Groups      []groupView
	Incidents   []Incident
	Maintenance []Notice
	Refresh     int
	// Degraded is why the monitoring itself is impaired ("" when it is
	// not), since DegradedSince: what the page shows may be out of date.
	Degraded      string
	DegradedSince time.Time
}

// worse is the page's overall state with one more service: down if it
// is down, degraded if it is degraded or named by an open incident that
// people are investigating or have identified.
func worse(overall string, sv Service) string {
	switch {
	case sv.Status == "down":
		return "down"
	case overall == "up" && sv.Status == "degraded":
		return "degraded"
	case overall == "up" && sv.Incident != nil && (sv.Incident.Status == "investigating" || sv.Incident.Status == "identified"):
		return "degraded"
	}
	return overall
}

// Degradation is what a Backend whose monitoring can be impaired also
// implements: why ("" when it is not) and since when.
type Degradation interface {
	Degraded() (string, time.Time)
}

// StatusData gathers what the status page shows (public services only).
func (s *Site) StatusData(r *http.Request) (statusView, error) {
	now := s.o.Now()
	svcs, err := s.b.Services(r.Context(), now, true)
	if err != nil {
		return statusView{}, err
	}
	incs, err := s.b.Incidents(r.Context(), true)
	if err != nil {
		return statusView{}, err
	}
	markIncidents(svcs, incs)
	v := statusView{Title: s.o.Title, Now: now, Overall: "up", Incidents: incs, Maintenance: s.b.Maintenance(now), Refresh: 60}
	if d, ok := s.b.(Degradation); ok {
		v.Degraded, v.DegradedSince = d.Degraded()
	}
	byGroup := map[string]*groupView{}
	for _, sv := range svcs {
		g := byGroup[sv.Group]
		if g == nil {
			g = &groupView{Name: sv.Group}
			byGroup[sv.Group] = g
		}
		g.Services = append(g.Services, sv)
		v.Overall = worse(v.Overall, sv)
	}
	for _, g := range byGroup {
		v.Groups = append(v.Groups, *g)
	}
	sort.Slice(v.Groups, func(i, j int) bool { return v.Groups[i].Name < v.Groups[j].Name })
	return v, nil
}

func (s *Site) statusPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.StatusData(r)
	if err != nil {
		http.Error(w, "status unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	v.Pages = s.pageLinks()
	s.render(w, "status.html", v)
}

// badge is an SVG shield for one public service: its state
// (/badge/NAME), its uptime (/badge/NAME/uptime?span=24h|7d|30d|90d,
// default 30d) or its average response time over the last 24 hours
// (/badge/NAME/response).
func (s *Site) badge(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(r.PathValue("name"), ".svg")
	kind := path.Base(r.URL.Path)
	span := r.URL.Query().Get("span")
	if span == "" {
		span = "30d"
	}
	if kind == "uptime" && span != "24h" && span != "7d" && span != "30d" && span != "90d" {
		http.Error(w, "span: want 24h, 7d, 30d or 90d", http.StatusBadRequest)
		return
	}
	svcs, err := s.b.Services(r.Context(), s.o.Now(), true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	for _, sv := range svcs {
		if sv.Name != name {
			continue
		}
		svg := badgeSVG(sv.Name, sv.Status)
		switch kind {
		case "uptime":
			up, ok := sv.Uptime[span]
			if !ok {
				up = -1
			}
			svg = uptimeBadge(sv.Name, span, up)
		case "response":
			avg := -1.0
			if len(sv.Latency) > 0 {
				sum := 0.0
				for _, p := range sv.Latency {
					sum += p.Ms
				}
				avg = sum / float64(len(sv.Latency))
			}
			svg = responseBadge(sv.Name, avg)
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "no-cache, max-age=30")
		_, _ = w.Write([]byte(svg))
		return
	}
	http.NotFound(w, r)
}

type consoleView struct {
	Title     string
	Failed    string
	Channels  []Channel
	Now       time.Time
	User      string
	CSRF      string
	Hosts     []Host
	Alerts    []Alert
	Incidents []Incident
	Services  []Service
	Flash     string
	// Updates is whether incidents take written updates; Continuable the
	// incidents an update can continue; Statuses an update's statuses.
	Updates     bool
	Continuable []continuable
	Statuses    []string
	// Logs: the tower has a log store, so the page links its search and
	// each alert's and incident's cross-host timeline.
	Logs bool
}

func (s *Site) signedIn(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.auth.session(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && !isForm(r) {
			http.Error(w, "the console takes only its own forms (application/x-www-form-urlencoded)", http.StatusUnsupportedMediaType)
			return
		}
		if r.Method == http.MethodPost && !checkPost(r, sess) {
			http.Error(w, "this request did not come from the console (CSRF check failed)", http.StatusForbidden)
			return
		}
		h(w, r, sess)
	}
}

func (s *Site) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login.html", map[string]any{"Title": s.o.Title, "Error": r.URL.Query().Get("e")})
}

func (s *Site) loginPost(w http.ResponseWriter, r *http.Request) {
	if !isForm(r) {
		http.Error(w, "sign in with the login form (application/x-www-form-urlencoded)", http.StatusUnsupportedMediaType)
		return
	}
	ok, retry := s.auth.login(w, r, r.PostFormValue("name"), r.PostFormValue("password"))
	switch {
	case retry > 0:
		secs := int(math.Ceil(retry.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.WriteHeader(http.StatusTooManyRequests)
		s.render(w, "login.html", map[string]any{"Title": s.o.Title, "Error": "Too many failed attempts; try again in " + finding.HumanDuration(time.Duration(secs)*time.Second) + "."})
	case !ok:
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, "login.html", map[string]any{"Title": s.o.Title, "Error": "Wrong name or password."})
	default:
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	}
}

func (s *Site) logoutPost(w http.ResponseWriter, r *http.Request, _ *session) {
	s.auth.logout(w, r)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func (s *Site) consolePage(w http.ResponseWriter, r *http.Request, sess *session) {
	now := s.o.Now()
	v := consoleView{Title: s.o.Title, Now: now, User: sess.user, CSRF: sess.csrf, Flash: r.URL.Query().Get("done"), Failed: r.URL.Query().Get("failed")}
	if ct, ok := s.b.(ChannelTester); ok {
		v.Channels = ct.Channels()
	}
	v.Logs = s.keepsLogs()
	var err error
	if v.Hosts, err = s.b.Hosts(r.Context(), now); err == nil {
		if v.Alerts, err = s.b.Alerts(r.Context(), now); err == nil {
			if v.Incidents, err = s.b.Incidents(r.Context(), false); err == nil {
				v.Services, err = s.b.Services(r.Context(), now, false)
			}
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if _, ok := s.b.(IncidentWriter); ok {
		v.Updates, v.Continuable, v.Statuses = true, openContinuable(v.Incidents), UpdateStatuses
	}
	s.render(w, "console.html", v)
}

func (s *Site) incidentPage(w http.ResponseWriter, r *http.Request, sess *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	in, evs, err := s.b.Timeline(r.Context(), id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	md, _ := s.b.Postmortem(r.Context(), id)
	s.render(w, "incident.html", map[string]any{"Title": s.o.Title, "User": sess.user, "CSRF": sess.csrf, "Incident": in, "Timeline": evs, "Postmortem": md, "Now": s.o.Now(), "Logs": s.keepsLogs()})
}

func (s *Site) postmortem(w http.ResponseWriter, r *http.Request, _ *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	md, err := s.b.Postmortem(r.Context(), id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	_, _ = w.Write([]byte(md))
}

func (s *Site) ackPost(w http.ResponseWriter, r *http.Request, sess *session) {
	if err := s.b.Ack(r.Context(), r.PostFormValue("key"), sess.user, r.PostFormValue("comment")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/console/?done=acknowledged", http.StatusSeeOther)
}

func (s *Site) silencePost(w http.ResponseWriter, r *http.Request, sess *session) {
	d, err := time.ParseDuration(r.PostFormValue("for"))
	if err != nil || d <= 0 {
		http.Error(w, "for: a duration such as 2h", http.StatusBadRequest)
		return
	}
	if err := s.b.Silence(r.Context(), r.PostFormValue("host"), r.PostFormValue("key"), d, sess.user, r.PostFormValue("comment")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/console/?done=silenced", http.StatusSeeOther)
}

// Channel is a notification channel as the console lists it.
type Channel struct{ Name, Type string }

// ChannelTester is what a Backend whose channels can send a test message
// also implements.
type ChannelTester interface {
	Channels() []Channel
	// TestChannel sends a test message through the named channel, one
	// attempt; the error says why the service refused it.
	TestChannel(ctx context.Context, name, by string) error
}

func (s *Site) testChannelPost(w http.ResponseWriter, r *http.Request, sess *session) {
	ct, ok := s.b.(ChannelTester)
	if !ok {
		http.NotFound(w, r)
		return
	}
	name := r.PostFormValue("name")
	if err := ct.TestChannel(r.Context(), name, sess.user); err != nil {
		http.Redirect(w, r, "/console/?failed="+url.QueryEscape("test message to "+name+": "+err.Error()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/?done="+url.QueryEscape("test message sent to "+name), http.StatusSeeOther)
}
