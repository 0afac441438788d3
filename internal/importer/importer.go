// Package importer turns another monitor's configuration (a Gatus
// config.yaml, an Uptime Kuma backup) into a hinomi tower configuration:
// every endpoint or monitor, condition and notification that has a
// meaning here, and a list of what did not map and why, so nothing is
// dropped silently.
package importer

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/probe"
)

// Result is an import: the tower configuration and what was left out.
type Result struct {
	Config  Config
	Skipped []Skip
}

// Skip is one thing that did not map, with the reason in plain words.
type Skip struct {
	What string // "endpoint \"ssh-bastion\"", "condition \"[X] == 1\" of endpoint \"x\""
	Why  string
}

// Config is the part of the tower's YAML an import writes. Its keys are
// the tower's (docs/tower.md); `hinomi tower --check` validates it.
type Config struct {
	Listen   string           `yaml:"listen"`
	DataDir  string           `yaml:"data_dir"`
	Channels []notify.Channel `yaml:"channels,omitempty"`
	Routes   []Route          `yaml:"routes,omitempty"`
	Probes   []Probe          `yaml:"probes"`
}

// Probe is one probe of the tower's configuration.
type Probe struct {
	Name               string            `yaml:"name"`
	Group              string            `yaml:"group,omitempty"`
	Type               probe.Type        `yaml:"type"`
	Target             string            `yaml:"target"`
	Interval           Duration          `yaml:"interval,omitempty"`
	Timeout            Duration          `yaml:"timeout,omitempty"`
	Method             string            `yaml:"method,omitempty"`
	Headers            map[string]string `yaml:"headers,omitempty"`
	Body               string            `yaml:"body,omitempty"`
	FollowRedirects    *bool             `yaml:"follow_redirects,omitempty"`
	InsecureSkipVerify bool              `yaml:"insecure_skip_verify,omitempty"`
	KeepAlive          bool              `yaml:"keep_alive,omitempty"`
	TLS                string            `yaml:"tls,omitempty"`
	RecordType         string            `yaml:"record_type,omitempty"`
	Resolver           string            `yaml:"resolver,omitempty"`
	Conditions         []string          `yaml:"conditions,omitempty"`
	Degraded           []string          `yaml:"degraded,omitempty"`
	Public             bool              `yaml:"public,omitempty"`
	FailureThreshold   int               `yaml:"failure_threshold,omitempty"`
	SuccessThreshold   int               `yaml:"success_threshold,omitempty"`
}

// Route sends some alerts to channels.
type Route struct {
	Name     string   `yaml:"name"`
	Match    Match    `yaml:"match"`
	Channels []string `yaml:"channels"`
}

// Match selects alerts by key.
type Match struct {
	Key string `yaml:"key"`
}

// Duration is written the way people read it: 30s, 5m, 1h.
type Duration time.Duration

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// YAML renders the result as a tower configuration with a header that
// says where it came from and lists what did not map.
func (r *Result) YAML(source string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# hinomi tower configuration imported from %s.\n", source)
	fmt.Fprintf(&b, "# %d probes, %d channels, %d routes.", len(r.Config.Probes), len(r.Config.Channels), len(r.Config.Routes))
	if len(r.Skipped) == 0 {
		b.WriteString(" Everything mapped.\n")
	} else {
		fmt.Fprintf(&b, " Not imported (%d):\n", len(r.Skipped))
		for _, s := range r.Skipped {
			fmt.Fprintf(&b, "#   - %s: %s\n", s.What, s.Why)
		}
	}
	b.WriteString("# Check it with: hinomi tower --config FILE --check\n\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(r.Config); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (r *Result) skip(what, format string, args ...any) {
	r.Skipped = append(r.Skipped, Skip{What: what, Why: fmt.Sprintf(format, args...)})
}

// addProbe validates p as the tower will, dropping the conditions that
// do not parse (and saying so), and adds it under a unique name.
func (r *Result) addProbe(p Probe, what string) (name string, ok bool) {
	used := map[string]bool{}
	for _, q := range r.Config.Probes {
		used[q.Name] = true
	}
	base := p.Name
	for i := 2; used[p.Name]; i++ {
		p.Name = fmt.Sprintf("%s-%d", base, i)
	}
	for _, list := range []*[]string{&p.Conditions, &p.Degraded} {
		var kept []string
		for _, c := range *list {
			spec := probe.Spec{Name: p.Name, Type: p.Type, Target: p.Target, Conditions: []string{c}}
			if err := spec.Validate(); err != nil {
				r.skip(fmt.Sprintf("condition %q of %s", c, what), "%s", conditionWhy(err, p.Type))
				continue
			}
			kept = append(kept, c)
		}
		*list = kept
	}
	spec := probe.Spec{Name: p.Name, Type: p.Type, Target: p.Target, Interval: time.Duration(p.Interval),
		Timeout: time.Duration(p.Timeout), Conditions: p.Conditions, Degraded: p.Degraded,
		Method: p.Method, Headers: p.Headers, RecordType: p.RecordType, Resolver: p.Resolver, TLS: p.TLS}
	if err := spec.Validate(); err != nil {
		r.skip(what, "%v", err)
		return "", false
	}
	r.Config.Probes = append(r.Config.Probes, p)
	return p.Name, true
}

var placeholderRE = regexp.MustCompile(`unknown placeholder \[([A-Z_]+)\]`)

// conditionWhy says why a condition was left out, in a user's words.
func conditionWhy(err error, t probe.Type) string {
	if t == probe.SSH && strings.Contains(err.Error(), "is not measured by ssh probes") {
		return sshWhy
	}
	if m := placeholderRE.FindStringSubmatch(err.Error()); m != nil {
		return "hinomi does not measure [" + m[1] + "]"
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "probe ") {
		msg = msg[i+2:]
	}
	return msg
}

// addChannel adds a channel under a unique name, valid as the tower
// checks it (secrets may still be ${VARIABLES} to fill in).
func (r *Result) addChannel(ch notify.Channel, what string) (name string, ok bool) {
	used := map[string]bool{}
	for _, c := range r.Config.Channels {
		used[c.Name] = true
	}
	base := ch.Name
	for i := 2; used[ch.Name]; i++ {
		ch.Name = fmt.Sprintf("%s-%d", base, i)
	}
	check := ch
	// ${VAR} secrets are read when the tower starts; here only the shape
	// is checked.
	if _, err := check.ReadSecrets(func(string) (string, bool) { return "placeholder", true }); err != nil {
		r.skip(what, "%v", err)
		return "", false
	}
	if err := check.Validate(); err != nil {
		r.skip(what, "%v", err)
		return "", false
	}
	r.Config.Channels = append(r.Config.Channels, ch)
	return ch.Name, true
}

// routeProbes adds, per set of channels, one route for the probes that
// notify exactly that set.
func (r *Result) routeProbes(byProbe map[string][]string) {
	groups := map[string][]string{}
	var keys []string
	for probeName, chans := range byProbe {
		if len(chans) == 0 {
			continue
		}
		sort.Strings(chans)
		k := strings.Join(chans, ",")
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], probeName)
	}
	sort.Strings(keys)
	if len(keys) == 1 && len(groups[keys[0]]) == len(r.Config.Probes) {
		// Every probe notifies the same channels: one route.
		r.Config.Routes = append(r.Config.Routes, Route{Name: "probes", Match: Match{Key: "probe/*"}, Channels: strings.Split(keys[0], ",")})
		return
	}
	for _, k := range keys {
		probes := groups[k]
		sort.Strings(probes)
		for _, p := range probes {
			r.Config.Routes = append(r.Config.Routes, Route{
				Name: "probe " + p, Match: Match{Key: "probe/" + p}, Channels: strings.Split(k, ","),
			})
		}
	}
}

// slug makes a probe or channel name from a display name.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(strings.TrimSpace(s)) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.':
			b.WriteRune(c)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if out == "" {
		out = "unnamed"
	}
	return out
}

// String is time.Duration's form without its zero tails: 5m, 1h30m, 90s.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
