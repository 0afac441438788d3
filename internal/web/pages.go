package web

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Page is one more status page, at /status/SLUG: its own title,
// description, logo and footer, showing the public services of some
// groups or some services by name, and the incidents that touch them.
type Page struct {
	Slug        string   `yaml:"slug"`
	Title       string   `yaml:"title"`
	Description string   `yaml:"description"`
	Footer      string   `yaml:"footer"`
	Groups      []string `yaml:"groups"`
	Services    []string `yaml:"services"`
	// LogoFile is a PNG, JPEG, GIF, WebP or SVG file served with the page
	// (the page allows no image from elsewhere).
	LogoFile string `yaml:"logo_file"`

	logo     []byte
	logoType string
}

// maxLogo bounds a page's logo.
const maxLogo = 512 << 10

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// LoadPage checks a page and reads its logo with read (os.ReadFile).
func LoadPage(p *Page, read func(string) ([]byte, error)) error {
	if !slugRE.MatchString(p.Slug) {
		return fmt.Errorf("status page slug %q: lower-case letters, digits and -, as in /status/infra", p.Slug)
	}
	if len(p.Groups) == 0 && len(p.Services) == 0 {
		return fmt.Errorf("status page %q: list the groups or the services it shows", p.Slug)
	}
	if p.LogoFile == "" {
		return nil
	}
	b, err := read(p.LogoFile)
	if err != nil {
		return fmt.Errorf("status page %q: logo_file: %w", p.Slug, err)
	}
	if len(b) > maxLogo {
		return fmt.Errorf("status page %q: logo_file is %d KiB; at most %d KiB", p.Slug, len(b)>>10, maxLogo>>10)
	}
	ct := http.DetectContentType(b)
	if bytes.Contains(b[:min(len(b), 512)], []byte("<svg")) {
		ct = "image/svg+xml"
	}
	switch ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml":
	default:
		return fmt.Errorf("status page %q: logo_file is %s, not a PNG, JPEG, GIF, WebP or SVG image", p.Slug, ct)
	}
	p.logo, p.logoType = b, ct
	return nil
}

// shows reports whether the page shows a service.
func (p *Page) shows(s Service) bool {
	return slices.Contains(p.Groups, s.Group) || slices.Contains(p.Services, s.Name)
}

func (s *Site) page(slug string) (*Page, bool) {
	if s.o.Pages == nil {
		return nil, false
	}
	for _, p := range s.o.Pages() {
		if p.Slug == slug {
			return &p, true
		}
	}
	return nil, false
}

// statusSubPage serves /status/SLUG.
func (s *Site) statusSubPage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.page(r.PathValue("slug"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	v, err := s.StatusData(r)
	if err != nil {
		http.Error(w, "status unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	v.Title, v.Description, v.Footer = p.Title, p.Description, p.Footer
	if v.Title == "" {
		v.Title = s.o.Title
	}
	if p.logo != nil {
		v.Logo = "/status/" + p.Slug + "/logo"
	}
	shown := map[string]bool{}
	var groups []groupView
	v.Overall = "up"
	for _, g := range v.Groups {
		var keep []Service
		for _, sv := range g.Services {
			if p.shows(sv) {
				keep = append(keep, sv)
				shown[sv.Name] = true
				v.Overall = worse(v.Overall, sv)
			}
		}
		if len(keep) > 0 {
			groups = append(groups, groupView{Name: g.Name, Services: keep})
		}
	}
	v.Groups = groups
	var incs []Incident
	for _, in := range v.Incidents {
		if slices.ContainsFunc(in.Services, func(n string) bool { return shown[n] }) {
			incs = append(incs, in)
		}
	}
	v.Incidents = incs
	s.render(w, "status.html", v)
}

// pageLogo serves a page's logo.
func (s *Site) pageLogo(w http.ResponseWriter, r *http.Request) {
	p, ok := s.page(r.PathValue("slug"))
	if !ok || p.logo == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", p.logoType)
	w.Header().Set("Cache-Control", "max-age=3600")
	// An SVG logo is shown as an image, where scripts do not run; opened
	// on its own it gets no rights either.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	_, _ = w.Write(p.logo)
}

// pageLinks lists the other pages, for the main page's footer.
func (s *Site) pageLinks() []pageLink {
	if s.o.Pages == nil {
		return nil
	}
	var out []pageLink
	for _, p := range s.o.Pages() {
		t := p.Title
		if strings.TrimSpace(t) == "" {
			t = p.Slug
		}
		out = append(out, pageLink{Href: "/status/" + p.Slug, Title: t})
	}
	return out
}

type pageLink struct{ Href, Title string }
