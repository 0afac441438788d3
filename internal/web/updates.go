package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// UpdateForm is an incident update as the console posts it: a new
// written incident (Title), or the next update of a thread or of one of
// the tower's incidents.
type UpdateForm struct {
	Thread, Incident int64
	Title            string
	Status           string
	Message          string
	Services         []string
	By               string
}

// IncidentWriter is what a Backend whose incidents take written updates
// also implements.
type IncidentWriter interface {
	PostUpdate(ctx context.Context, u UpdateForm) error
}

// UpdateStatuses are the statuses the console offers, in the order an
// incident goes through them.
var UpdateStatuses = []string{"investigating", "identified", "monitoring", "resolved"}

// updatePost takes the console's incident update form. Its "continue"
// field is "new", "thread-N" or "incident-N".
func (s *Site) updatePost(w http.ResponseWriter, r *http.Request, sess *session) {
	iw, ok := s.b.(IncidentWriter)
	if !ok {
		http.NotFound(w, r)
		return
	}
	u := UpdateForm{Title: r.PostFormValue("title"), Status: r.PostFormValue("status"), Message: r.PostFormValue("message"),
		Services: r.PostForm["service"], By: sess.user}
	cont := r.PostFormValue("continue")
	if n, ok := strings.CutPrefix(cont, "thread-"); ok {
		u.Thread, _ = strconv.ParseInt(n, 10, 64)
	} else if n, ok := strings.CutPrefix(cont, "incident-"); ok {
		u.Incident, _ = strconv.ParseInt(n, 10, 64)
	} else if cont != "" && cont != "new" {
		http.Error(w, "continue: new, thread-N or incident-N", http.StatusBadRequest)
		return
	}
	if err := iw.PostUpdate(r.Context(), u); err != nil {
		http.Redirect(w, r, "/console/?failed="+url.QueryEscape("incident update: "+err.Error())+"#updates-h", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/?done="+url.QueryEscape("incident update posted ("+u.Status+")"), http.StatusSeeOther)
}

// markIncidents marks each service an open incident names with that
// incident (the newest, when several do).
func markIncidents(svcs []Service, incs []Incident) {
	at := map[string]int{}
	for i := range svcs {
		at[svcs[i].Name] = i
	}
	for i := len(incs) - 1; i >= 0; i-- {
		in := &incs[i]
		if !in.Open() {
			continue
		}
		status := in.Status
		if status == "" {
			status = "ongoing"
		}
		for _, name := range in.Services {
			if j, ok := at[name]; ok {
				svcs[j].Incident = &ServiceIncident{Anchor: in.Anchor(), Title: in.Title, Status: status}
			}
		}
	}
}

// openContinuable lists the incidents an update can continue: those open,
// and those that have a written thread.
func openContinuable(incs []Incident) []continuable {
	var out []continuable
	for _, in := range incs {
		if !in.Open() && in.Thread == 0 {
			continue
		}
		c := continuable{Title: in.Title, Status: in.Status}
		switch {
		case in.Thread != 0:
			c.Value = "thread-" + strconv.FormatInt(in.Thread, 10)
		default:
			c.Value = "incident-" + strconv.FormatInt(in.ID, 10)
		}
		if in.ID != 0 {
			c.Title = "#" + strconv.FormatInt(in.ID, 10) + " " + c.Title
		}
		out = append(out, c)
	}
	return out
}

type continuable struct{ Value, Title, Status string }
