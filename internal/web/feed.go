package web

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxFeedEntries bounds the feed to the latest incidents.
const maxFeedEntries = 50

type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	Title   string      `xml:"title"`
	ID      string      `xml:"id"`
	Updated string      `xml:"updated"`
	Link    []atomLink  `xml:"link"`
	Author  atomAuthor  `xml:"author"`
	Entries []atomEntry `xml:"entry"`
}

type atomLink struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr,omitempty"`
}

type atomAuthor struct {
	Name string `xml:"name"`
}

type atomEntry struct {
	Title   string   `xml:"title"`
	ID      string   `xml:"id"`
	Updated string   `xml:"updated"`
	Link    atomLink `xml:"link"`
	Summary string   `xml:"summary"`
}

// feed is the public incidents as an Atom feed (/feed.atom), newest
// first, for feed readers and chat integrations: each entry says what
// was affected, since when and for how long, and its public updates.
func (s *Site) feed(w http.ResponseWriter, r *http.Request) {
	incs, err := s.b.Incidents(r.Context(), true)
	if err != nil {
		http.Error(w, "incidents unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	now := s.o.Now()
	base := "http://" + r.Host
	if r.TLS != nil || s.auth.secureRequest(r) {
		base = "https://" + r.Host
	}
	title := s.o.Title
	if title == "" {
		title = "Status"
	}
	f := atomFeed{Title: title + " — incidents", ID: base + "/feed.atom", Updated: now.UTC().Format(time.RFC3339),
		Link:   []atomLink{{Href: base + "/"}, {Href: base + "/feed.atom", Rel: "self"}},
		Author: atomAuthor{Name: title}}
	latest := time.Time{}
	for i, in := range incs {
		if i == maxFeedEntries {
			break
		}
		updated := in.Opened
		if !in.Closed.IsZero() {
			updated = in.Closed
		}
		for _, u := range in.Updates {
			if u.At.After(updated) {
				updated = u.At
			}
		}
		if updated.After(latest) {
			latest = updated
		}
		state := "ongoing since " + in.Opened.UTC().Format("2006-01-02 15:04 UTC")
		if !in.Closed.IsZero() {
			state = fmt.Sprintf("resolved: %s to %s (%s)", in.Opened.UTC().Format("2006-01-02 15:04"),
				in.Closed.UTC().Format("2006-01-02 15:04 UTC"), humanSpan(in.Opened, in.Closed))
		}
		var sum strings.Builder
		sum.WriteString(state)
		if len(in.Services) > 0 {
			sum.WriteString(". Affected: " + strings.Join(in.Services, ", "))
		}
		sum.WriteString(".")
		if in.Status != "" && in.Closed.IsZero() {
			sum.WriteString(" Status: " + in.Status + ".")
		}
		for _, u := range in.Updates {
			sum.WriteString("\n" + u.At.UTC().Format("2006-01-02 15:04 UTC") + ": ")
			if u.Status != "" {
				sum.WriteString(u.Status + ": ")
			}
			sum.WriteString(u.Text)
		}
		f.Entries = append(f.Entries, atomEntry{
			Title:   in.Title,
			ID:      base + "/#" + in.Anchor(),
			Updated: updated.UTC().Format(time.RFC3339),
			Link:    atomLink{Href: base + "/#" + in.Anchor()},
			Summary: sum.String(),
		})
	}
	if !latest.IsZero() {
		f.Updated = latest.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, max-age=60")
	_, _ = w.Write([]byte(xml.Header))
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	_ = enc.Encode(f)
}

func humanSpan(a, b time.Time) string {
	d := b.Sub(a).Round(time.Minute)
	if d < time.Minute {
		return "under a minute"
	}
	return strings.TrimSuffix(d.String(), "0s")
}
