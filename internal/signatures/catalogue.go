// Package signatures recognises distress in logs: a catalogue of
// declarative signatures (literal anchors, a pattern, the fields to
// extract, how repeats aggregate), a matcher that finds them in raw log
// bytes of any format at hundreds of MB/s, and an aggregator that turns
// the matches into a short timeline of events with counts, durations and
// runbook references.
package signatures

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hinomi/hinomi/internal/finding"
)

//go:embed catalogue.yaml
var builtin []byte

// Signature is one entry of the catalogue.
type Signature struct {
	ID       string           `yaml:"id"`
	Mode     string           `yaml:"mode"`
	Severity finding.Severity `yaml:"severity"`
	Title    string           `yaml:"title"`
	// Anchors are literal substrings; a line is only tested against the
	// pattern when it contains one of them.
	Anchors []string `yaml:"anchors"`
	// Pattern is an RE2 expression searched in the message; its named
	// groups are the fields. Empty: an anchor alone decides.
	Pattern string `yaml:"pattern"`
	// GroupBy are the fields that make two matches the same event.
	GroupBy []string `yaml:"group_by"`
	// Continuation: indented and trace lines that follow belong to it.
	Continuation bool `yaml:"continuation"`
	// Resolves names the signature whose open event this one ends.
	Resolves string `yaml:"resolves"`
	// Completes names the signature whose latest event (same host, equal
	// Same fields) this line is the second half of, as the kernel's old
	// two-line OOM report: it joins that event's evidence instead of
	// making an incident of its own. Alone, it is its own incident.
	Completes string   `yaml:"completes"`
	Same      []string `yaml:"same"`
	// Companion: the line is only ever evidence of the signature it
	// Completes; alone it is no finding (corosync's "Members[2]: 1 2"
	// after a failure is part of it, after a planned join it is news
	// of a healthy cluster).
	Companion bool `yaml:"companion"`
	// Repeat: every match in one line is an occurrence (a goroutine dump
	// logged as one line holds many blocked goroutines).
	Repeat bool `yaml:"repeat"`
	// Excuses names signatures whose events about the same cluster
	// node(s) are expected after this one (a node its administrator shut
	// down leaves the membership and its links go down): they are no
	// finding. The node is the event's "node" field (a space-separated
	// list for membership lines) or "host_id" (knet lines).
	Excuses []string `yaml:"excuses"`
	// MinCount: an incident with fewer occurrences is no finding (one
	// goroutine waiting long on a lock is normal; many are a hang).
	MinCount int `yaml:"min_count"`
	// Vars are runbook values every finding of the signature has: the
	// sub-case of its failure mode (resource: conntrack), so that the
	// runbook offers the steps for that case only.
	Vars map[string]string `yaml:"vars"`
	// Quiet is how long the agent's log watch waits without a new line
	// before the finding resolves (0: the agent's default, 30 minutes).
	Quiet    Duration  `yaml:"quiet"`
	Examples []Example `yaml:"examples"`
	// CounterExamples are real lines that must not match.
	CounterExamples []Example `yaml:"counter_examples"`

	re         *regexp.Regexp
	resolvedBy bool
}

// Example is a real log line with where it was found and the fields the
// signature must extract from it.
type Example struct {
	Line   string            `yaml:"line"`
	Source string            `yaml:"source"`
	Fields map[string]string `yaml:"fields"`
}

// Catalogue is a compiled set of signatures.
type Catalogue struct {
	Sigs []*Signature
	byID map[string]*Signature
}

// Builtin returns the catalogue embedded in hinomi.
func Builtin() (*Catalogue, error) {
	sigs, err := Parse(builtin)
	if err != nil {
		return nil, fmt.Errorf("built-in catalogue: %w", err)
	}
	return New(sigs)
}

// Load returns the built-in catalogue plus the signatures in the given
// files (same YAML layout); a user signature with a built-in ID replaces it.
func Load(files ...string) (*Catalogue, error) {
	sigs, err := Parse(builtin)
	if err != nil {
		return nil, fmt.Errorf("built-in catalogue: %w", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		more, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, m := range more {
			replaced := false
			for i, s := range sigs {
				if s.ID == m.ID {
					sigs[i], replaced = m, true
				}
			}
			if !replaced {
				sigs = append(sigs, m)
			}
		}
	}
	return New(sigs)
}

// Parse reads signatures from YAML.
func Parse(b []byte) ([]*Signature, error) {
	var sigs []*Signature
	if err := yaml.Unmarshal(b, &sigs); err != nil {
		return nil, err
	}
	return sigs, nil
}

var reMode = regexp.MustCompile(`^FM-[A-Z]\d+$`)

// New validates and compiles signatures.
func New(sigs []*Signature) (*Catalogue, error) {
	c := &Catalogue{byID: map[string]*Signature{}}
	var errs []error
	for _, s := range sigs {
		if err := s.compile(); err != nil {
			errs = append(errs, fmt.Errorf("signature %q: %w", s.ID, err))
			continue
		}
		if c.byID[s.ID] != nil {
			errs = append(errs, fmt.Errorf("signature %q: duplicate id", s.ID))
			continue
		}
		c.byID[s.ID] = s
		c.Sigs = append(c.Sigs, s)
	}
	for _, s := range c.Sigs {
		if s.Companion && s.Completes == "" {
			errs = append(errs, fmt.Errorf("signature %q is a companion of nothing: set completes", s.ID))
		}
		if s.Completes != "" && c.byID[s.Completes] == nil {
			errs = append(errs, fmt.Errorf("signature %q completes unknown %q", s.ID, s.Completes))
		}
		for _, x := range s.Excuses {
			if c.byID[x] == nil {
				errs = append(errs, fmt.Errorf("signature %q excuses unknown %q", s.ID, x))
			}
		}
		if s.Resolves == "" {
			continue
		}
		target := c.byID[s.Resolves]
		if target == nil {
			errs = append(errs, fmt.Errorf("signature %q resolves unknown %q", s.ID, s.Resolves))
			continue
		}
		target.resolvedBy = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (s *Signature) compile() error {
	switch {
	case s.ID == "":
		return errors.New("no id")
	case !reMode.MatchString(s.Mode):
		return fmt.Errorf("mode %q is not a failure-mode ID like FM-E1", s.Mode)
	case s.Severity == 0:
		return errors.New("no severity")
	case len(s.Anchors) == 0:
		return errors.New("no anchors: every signature needs a literal to be found fast")
	}
	for _, a := range s.Anchors {
		if len(a) < window {
			return fmt.Errorf("anchor %q is too short: anchors need at least %d bytes to be found fast", a, window)
		}
	}
	if s.Pattern != "" {
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return err
		}
		s.re = re
	}
	names := map[string]bool{}
	if s.re != nil {
		for _, n := range s.re.SubexpNames() {
			names[n] = true
		}
	}
	for _, g := range s.GroupBy {
		if !names[g] {
			return fmt.Errorf("group_by %q is not a named group of the pattern", g)
		}
	}
	return nil
}

// Get returns the signature with id, or nil.
func (c *Catalogue) Get(id string) *Signature { return c.byID[id] }

// Match tests a normalised message against the signature and returns the
// extracted fields.
func (s *Signature) Match(msg string) (map[string]string, bool) {
	if s.re == nil {
		for _, a := range s.Anchors {
			if strings.Contains(msg, a) {
				return map[string]string{}, true
			}
		}
		return nil, false
	}
	m := s.re.FindStringSubmatchIndex(msg)
	if m == nil {
		return nil, false
	}
	fields := map[string]string{}
	for i, n := range s.re.SubexpNames() {
		if n != "" && m[2*i] >= 0 {
			fields[n] = msg[m[2*i]:m[2*i+1]]
		}
	}
	return fields, true
}

// MatchAll is Match for every non-overlapping match in msg (a Repeat
// signature); it returns the fields of each.
func (s *Signature) MatchAll(msg string) []map[string]string {
	if s.re == nil {
		if f, ok := s.Match(msg); ok {
			return []map[string]string{f}
		}
		return nil
	}
	var out []map[string]string
	for _, m := range s.re.FindAllStringSubmatchIndex(msg, -1) {
		fields := map[string]string{}
		for i, n := range s.re.SubexpNames() {
			if n != "" && m[2*i] >= 0 {
				fields[n] = msg[m[2*i]:m[2*i+1]]
			}
		}
		out = append(out, fields)
	}
	return out
}

// Regexp is the compiled pattern (nil when the anchors decide alone).
func (s *Signature) Regexp() *regexp.Regexp { return s.re }

// Duration is a YAML duration written with its unit: 15m, 2h.
type Duration time.Duration

// UnmarshalYAML reads "15m", "2h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 15m or 2h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}
