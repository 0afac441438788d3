package tower

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hinomi/hinomi/internal/web"
)

// Incident updates are what people write for the public while something
// is wrong: a status (investigating, identified, monitoring, resolved), a
// message and the services affected. Updates form a thread, which is
// about one of the tower's incidents (its updates then join that
// incident on the status page) or stands on its own (an outage the
// probes do not see, a planned change gone wrong). They live in the store
// only, so every tower on a shared store shows the same ones.

// IncidentUpdate is one written update.
type IncidentUpdate struct {
	ID int64 `json:"id"`
	// Thread is the id of the thread's first update.
	Thread int64 `json:"thread"`
	// Incident is the tower's incident the thread is about, 0 if none.
	Incident int64     `json:"incident,omitempty"`
	Title    string    `json:"title,omitempty"`
	Status   string    `json:"status"`
	Message  string    `json:"message"`
	Services []string  `json:"services,omitempty"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
}

// UpdateStatuses are an update's statuses, in the order an incident goes
// through them.
var UpdateStatuses = []string{"investigating", "identified", "monitoring", "resolved"}

const (
	maxUpdateMessage = 4000
	maxUpdateTitle   = 200
	// updatesShown is how long a resolved thread stays on the status page
	// (as resolved incidents do).
	updatesShown = 7 * 24 * time.Hour
)

// PostIncidentUpdate checks an update, stamps it with the time and saves
// it; the answer is the update as saved (its ID and thread).
func (t *Tower) PostIncidentUpdate(ctx context.Context, u IncidentUpdate) (IncidentUpdate, error) {
	u.Status = strings.ToLower(strings.TrimSpace(u.Status))
	u.Message, u.Title, u.By = strings.TrimSpace(u.Message), strings.TrimSpace(u.Title), strings.TrimSpace(u.By)
	switch {
	case !slices.Contains(UpdateStatuses, u.Status):
		return u, fmt.Errorf("status %q: want one of %s", u.Status, strings.Join(UpdateStatuses, ", "))
	case u.Message == "":
		return u, errors.New("message: say what is happening, for the people who read the status page")
	case utf8.RuneCountInString(u.Message) > maxUpdateMessage:
		return u, fmt.Errorf("message is %d characters long; at most %d", utf8.RuneCountInString(u.Message), maxUpdateMessage)
	case utf8.RuneCountInString(u.Title) > maxUpdateTitle:
		return u, fmt.Errorf("title is %d characters long; at most %d", utf8.RuneCountInString(u.Title), maxUpdateTitle)
	case u.By == "":
		return u, errors.New("by: who writes the update")
	case u.Thread == 0 && u.Incident == 0 && u.Title == "":
		return u, errors.New("title: a new incident needs one (or continue an incident: thread or incident)")
	case u.ID != 0:
		return u, errors.New("id is given by the tower")
	}
	known := serviceNames(t.cfg.Load())
	var services []string
	for _, s := range u.Services {
		s = strings.TrimSpace(s)
		if s == "" || slices.Contains(services, s) {
			continue
		}
		if !known[s] {
			return u, fmt.Errorf("services: no probe or push monitor is named %q", s)
		}
		services = append(services, s)
	}
	u.Services = services
	if u.Incident != 0 {
		if _, err := t.http.incidents.incident(ctx, u.Incident); err != nil {
			return u, err
		}
	}
	u.At = t.now().UTC()
	saved, err := t.store.SaveIncidentUpdate(ctx, u)
	if errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("no incident thread %d", u.Thread)
	}
	if err != nil {
		return u, err
	}
	t.log.Info("incident update", "thread", saved.Thread, "incident", saved.Incident, "status", saved.Status, "by", saved.By)
	return saved, nil
}

// serviceNames is every probe's and push monitor's name.
func serviceNames(cfg *Config) map[string]bool {
	out := map[string]bool{}
	for _, p := range cfg.Probes {
		out[p.Name] = true
	}
	for _, p := range cfg.Pushes {
		out[p.Name] = true
	}
	return out
}

// updateThread is a thread's updates, oldest first, and what they add up
// to.
type updateThread struct {
	updates []IncidentUpdate
}

func (th *updateThread) first() IncidentUpdate  { return th.updates[0] }
func (th *updateThread) latest() IncidentUpdate { return th.updates[len(th.updates)-1] }

// title is the latest title given.
func (th *updateThread) title() string {
	for i := len(th.updates) - 1; i >= 0; i-- {
		if th.updates[i].Title != "" {
			return th.updates[i].Title
		}
	}
	return ""
}

// services is what the latest update that names any names: an update
// that leaves them out keeps the ones before.
func (th *updateThread) services() []string {
	for i := len(th.updates) - 1; i >= 0; i-- {
		if len(th.updates[i].Services) > 0 {
			return th.updates[i].Services
		}
	}
	return nil
}

func (th *updateThread) resolved() bool { return th.latest().Status == "resolved" }

// updateThreads groups updates by thread, in the order of their first
// updates.
func updateThreads(us []IncidentUpdate) []*updateThread {
	by := map[int64]*updateThread{}
	var out []*updateThread
	for _, u := range us {
		th := by[u.Thread]
		if th == nil {
			th = &updateThread{}
			by[u.Thread] = th
			out = append(out, th)
		}
		th.updates = append(th.updates, u)
	}
	return out
}

// handleIncidentUpdates serves GET and POST /api/v1/incident-updates.
func (a *api) handleIncidentUpdates(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		us, err := a.store.LoadIncidentUpdates(r.Context(), a.now().Add(-updatesShown))
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		if us == nil {
			us = []IncidentUpdate{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"updates": us})
		return
	}
	var u IncidentUpdate
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed update: " + err.Error()})
		return
	}
	saved, err := a.changes.PostIncidentUpdate(r.Context(), u)
	if err != nil {
		code := http.StatusBadRequest
		if a.store.StorageError(err) {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"update": saved})
}

// writtenThreads is the threads the status page shows, those about one of
// the tower's incidents by its id, and the others.
func (b webBackend) writtenThreads(ctx context.Context) (map[int64]*updateThread, []*updateThread, error) {
	us, err := b.a.store.LoadIncidentUpdates(ctx, b.a.now().Add(-updatesShown))
	if err != nil {
		return nil, nil, err
	}
	byIncident := map[int64]*updateThread{}
	var alone []*updateThread
	for _, th := range updateThreads(us) {
		if id := th.first().Incident; id != 0 {
			byIncident[id] = th
		} else {
			alone = append(alone, th)
		}
	}
	return byIncident, alone, nil
}

// applyThread adds a thread's written updates to an incident as the pages
// show it: its title (when it has one), its latest status, the services
// it names that keep allows, and its updates (with their authors for the
// console).
func applyThread(v *web.Incident, th *updateThread, keep func(string) bool, console bool) {
	v.Thread, v.Status = th.first().Thread, th.latest().Status
	if title := th.title(); title != "" {
		v.Title = title
	}
	for _, s := range th.services() {
		if keep(s) && !slices.Contains(v.Services, s) {
			v.Services = append(v.Services, s)
		}
	}
	for _, u := range th.updates {
		e := web.TimelineEvent{At: u.At, Kind: "update", Text: u.Message, Status: u.Status}
		if console {
			e.By = u.By
		}
		v.Updates = append(v.Updates, e)
	}
}

// threadIncident is a thread about none of the listed incidents, as the
// pages show it: open until its latest update says resolved.
func threadIncident(th *updateThread, keep func(string) bool, console bool) web.Incident {
	v := web.Incident{ID: th.first().Incident, Title: "Incident", Opened: th.first().At}
	if th.resolved() {
		v.Closed = th.latest().At
	}
	applyThread(&v, th, keep, console)
	return v
}

// newestFirst orders each incident's updates newest first, and the
// incidents by when they began, newest first.
func newestFirst(out []web.Incident) {
	for i := range out {
		slices.SortStableFunc(out[i].Updates, func(a, b web.TimelineEvent) int { return b.At.Compare(a.At) })
	}
	slices.SortStableFunc(out, func(a, b web.Incident) int { return b.Opened.Compare(a.Opened) })
}

// PostUpdate takes the console's incident update.
func (b webBackend) PostUpdate(ctx context.Context, f web.UpdateForm) error {
	_, err := b.a.changes.PostIncidentUpdate(ctx, IncidentUpdate{Thread: f.Thread, Incident: f.Incident, Title: f.Title,
		Status: f.Status, Message: f.Message, Services: f.Services, By: f.By})
	return err
}

// publicService says whether the pages may name a service: any on the
// console; on the public pages one marked public, by its results (public,
// alert keys) or, before its first result, by the configuration.
func publicService(cfg *Config, publicOnly bool, public map[string]bool) func(string) bool {
	if !publicOnly {
		return func(string) bool { return true }
	}
	return func(name string) bool {
		if public["probe/"+name] || public["push/"+name] {
			return true
		}
		for _, p := range cfg.Probes {
			if p.Name == name {
				return p.Public
			}
		}
		return false
	}
}
