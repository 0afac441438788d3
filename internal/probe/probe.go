// Package probe runs deep checks of services from the outside — HTTP(S), TCP, DNS, TLS and
// ICMP — and judges each answer with a small condition language ("[STATUS] == 200",
// "[BODY] not contains \"Something went wrong\"", "[BODY].status == up") so that a page that
// answers 200 with an error banner is DOWN, not green (failure mode FM-A3). It also holds the
// scheduler that runs many probes on time and the rule that merges several locations'
// verdicts. The language, the YAML and the rules are documented in docs/probes.md.
package probe

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Type is the kind of probe.
type Type string

// The probe types.
const (
	HTTP Type = "http"
	TCP  Type = "tcp"
	DNS  Type = "dns"
	TLS  Type = "tls"
	ICMP Type = "icmp"
	// SMTP, IMAP and SSH connect and check the server's greeting (docs/probes.md).
	SMTP Type = "smtp"
	IMAP Type = "imap"
	SSH  Type = "ssh"
	// Domain reads a domain's registration expiry from its registry over RDAP.
	Domain Type = "domain"
	// Docker reads a container's state and health from the tower host's Docker engine.
	Docker Type = "docker"
)

// Types lists every probe type, in a stable order.
var Types = []Type{HTTP, TCP, DNS, TLS, ICMP, SMTP, IMAP, SSH, Domain, Docker}

// Status is a probe's verdict.
type Status string

// The verdicts. Unknown is only returned by Consensus when no location could vote.
const (
	Up       Status = "up"
	Degraded Status = "degraded"
	Down     Status = "down"
	Unknown  Status = "unknown"
)

// Defaults applied by Validate.
const (
	DefaultInterval = 60 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// Spec is one probe as written in YAML (docs/probes.md). Call Validate before using it: it
// fills the defaults and compiles the conditions.
type Spec struct {
	Name  string `yaml:"name"`
	Group string `yaml:"group,omitempty"`
	Type  Type   `yaml:"type"`
	// Target: a URL for http; host:port for tcp, tls, smtp, imap and ssh; a name for dns; a
	// host for icmp; a domain name for domain; a container name or ID for docker.
	Target   string        `yaml:"target"`
	Interval time.Duration `yaml:"interval,omitempty"`
	Timeout  time.Duration `yaml:"timeout,omitempty"`

	// HTTP only.
	Method  string            `yaml:"method,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty"`
	// FollowRedirects defaults to true; a pointer so that an explicit false is kept.
	FollowRedirects *bool `yaml:"follow_redirects,omitempty"`
	// InsecureSkipVerify (http, tls, smtp, imap): accept any certificate; its expiry is
	// still read.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
	// KeepAlive (http): reuse connections between runs, as Gatus does, instead of opening
	// one per run. [RESPONSE_TIME] then leaves out connecting and the TLS handshake once a
	// connection is open. Idle connections are closed every minute, so a changed address
	// or certificate is seen within about two.
	KeepAlive bool `yaml:"keep_alive,omitempty"`

	// TLS (smtp and imap): "auto" (the default: implicit TLS on ports 465 and 993, STARTTLS
	// required on 587, STARTTLS when offered elsewhere), "implicit", "starttls" (required)
	// or "none".
	TLS string `yaml:"tls,omitempty"`

	// DNS only.
	RecordType string `yaml:"record_type,omitempty"`
	Resolver   string `yaml:"resolver,omitempty"`

	// Conditions must all hold, or the probe is DOWN.
	Conditions []string `yaml:"conditions,omitempty"`
	// Degraded conditions must hold too, but their failure only makes the probe DEGRADED.
	Degraded []string `yaml:"degraded,omitempty"`
	// Public: the probe may be shown on the public status page.
	Public bool `yaml:"public,omitempty"`

	compiled *plan
}

// plan is a Spec's compiled conditions.
type plan struct {
	conditions []*condition
	degraded   []*condition
	// connected: some condition reads [CONNECTED], so a failed connection is left for the
	// conditions to judge instead of making the probe DOWN by itself.
	connected bool
	// domain: some condition reads [DOMAIN_EXPIRATION], so an http probe asks RDAP too.
	domain bool
}

// Result is the outcome of one run of a probe.
type Result struct {
	Status   Status        `json:"status"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// Error is why the probe could not get an answer (refused, timed out, bad certificate).
	Error string `json:"error,omitempty"`
	// Reason is why the probe is not up in plain words for the public ("connection
	// refused", "HTTP 500", "certificate expired 3 days ago"): no address, port, URL or
	// measured value, which stay in Error and Failed. Empty when up.
	Reason string `json:"reason,omitempty"`
	// Failed holds each failed condition with the value seen, e.g.
	// `[RESPONSE_TIME] < 500ms: was 812ms`.
	Failed []string `json:"failed,omitempty"`
	// Values holds what was measured; the keys are listed in docs/probes.md.
	Values map[string]string `json:"values,omitempty"`
}

// FollowsRedirects reports whether an HTTP probe follows redirects (the default).
func (s *Spec) FollowsRedirects() bool { return s.FollowRedirects == nil || *s.FollowRedirects }

// ConditionError is an invalid condition. Field is "conditions" or "degraded", Index the
// position in that list (so the caller can point at the YAML line), Column the 1-based
// column (in characters) of the fault within the condition text.
type ConditionError struct {
	Field     string
	Index     int
	Column    int
	Condition string
	Msg       string
}

func (e *ConditionError) Error() string {
	field := e.Field
	if field == "" {
		field = "condition"
	}
	return fmt.Sprintf("%s[%d]: %q: %s at column %d", field, e.Index, e.Condition, e.Msg, e.Column)
}

// Validate checks the spec, fills in its defaults and compiles its conditions. It reports
// every problem it finds (errors.Join); a bad condition is a *ConditionError, which
// errors.As finds.
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("probe %q: "+format, append([]any{s.Name}, args...)...))
	}
	if strings.TrimSpace(s.Name) == "" {
		bad("name is required")
	}
	s.Type = Type(strings.ToLower(string(s.Type)))
	known := false
	for _, t := range Types {
		known = known || s.Type == t
	}
	if !known {
		names := make([]string, len(Types))
		for i, t := range Types {
			names[i] = string(t)
		}
		bad("type %q is not one of %s", s.Type, strings.Join(names, ", "))
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = min(DefaultTimeout, s.Interval)
	}
	switch {
	case s.Interval < time.Second:
		bad("interval %s is shorter than 1s", s.Interval)
	case s.Timeout < 0:
		bad("timeout %s is negative", s.Timeout)
	case s.Timeout > s.Interval:
		bad("timeout %s is longer than the interval %s: runs would overlap", s.Timeout, s.Interval)
	}
	if err := s.validateTarget(); err != nil {
		bad("%v", err)
	}
	if s.Type != HTTP {
		for _, f := range []struct {
			name string
			set  bool
		}{{"method", s.Method != ""}, {"headers", len(s.Headers) > 0}, {"body", s.Body != ""},
			{"follow_redirects", s.FollowRedirects != nil}, {"keep_alive", s.KeepAlive}} {
			if f.set {
				bad("%s is only for http probes", f.name)
			}
		}
	}
	if s.InsecureSkipVerify && s.Type != HTTP && s.Type != TLS && s.Type != SMTP && s.Type != IMAP {
		bad("insecure_skip_verify is only for http, tls, smtp and imap probes")
	}
	s.TLS = strings.ToLower(strings.TrimSpace(s.TLS))
	switch {
	case s.TLS != "" && s.Type != SMTP && s.Type != IMAP:
		bad("tls is only for smtp and imap probes (a tls probe checks TLS on any port)")
	case s.TLS == "", s.TLS == tlsAuto, s.TLS == tlsImplicit, s.TLS == tlsStartTLS, s.TLS == tlsNone:
	default:
		bad("tls %q is not one of auto, implicit, starttls, none", s.TLS)
	}
	if s.Type != DNS && (s.RecordType != "" || s.Resolver != "") {
		bad("record_type and resolver are only for dns probes")
	}
	if s.Type == HTTP {
		if s.Method == "" {
			s.Method = "GET"
		}
		s.Method = strings.ToUpper(s.Method)
		if strings.ContainsAny(s.Method, " \t/:") {
			bad("method %q is not an HTTP method", s.Method)
		}
	}
	if s.Type == DNS {
		if s.RecordType == "" {
			s.RecordType = "A"
		}
		s.RecordType = strings.ToUpper(s.RecordType)
		if _, ok := recordTypes[s.RecordType]; !ok {
			bad("record_type %q is not one of A, AAAA, CNAME, MX, TXT, NS", s.RecordType)
		}
		if s.Resolver != "" {
			if err := checkHostPort(s.Resolver); err != nil {
				bad("resolver: %v", err)
			}
		}
	}
	p := &plan{}
	lists := []struct {
		field string
		texts []string
		dst   *[]*condition
	}{{"conditions", s.Conditions, &p.conditions}, {"degraded", s.Degraded, &p.degraded}}
	for _, l := range lists {
		for i, text := range l.texts {
			c, err := parseCondition(text, s.Type, s.Target)
			if err != nil {
				var ce *ConditionError
				if errors.As(err, &ce) {
					ce.Field, ce.Index = l.field, i
				}
				errs = append(errs, fmt.Errorf("probe %q: %w", s.Name, err))
				continue
			}
			p.connected = p.connected || c.reads(phConnected)
			p.domain = p.domain || c.reads(phDomain)
			*l.dst = append(*l.dst, c)
		}
	}
	if s.TLS == tlsNone {
		for _, c := range append(slices.Clone(p.conditions), p.degraded...) {
			if c.reads(phCert) {
				bad("%s reads [CERTIFICATE_EXPIRATION], which tls: none never measures", strconv.Quote(c.text))
			}
		}
	}
	if len(errs) > 0 {
		s.compiled = nil
		return errors.Join(errs...)
	}
	if len(p.conditions) == 0 && len(p.degraded) == 0 {
		c, err := parseCondition(defaultCondition[s.Type], s.Type, s.Target)
		if err != nil {
			return fmt.Errorf("probe %q: default condition: %w", s.Name, err)
		}
		p.conditions = []*condition{c}
	}
	s.compiled = p
	return nil
}

// defaultCondition is what a probe without conditions checks.
var defaultCondition = map[Type]string{
	HTTP: "[STATUS] < 400",
	TCP:  "[CONNECTED] == true",
	TLS:  "[CONNECTED] == true",
	ICMP: "[CONNECTED] == true",
	DNS:  "[DNS_RCODE] == NOERROR",
	// The greeting itself is checked by the run: a wrong one is DOWN with its reason.
	SMTP:   "[CONNECTED] == true",
	IMAP:   "[CONNECTED] == true",
	SSH:    "[CONNECTED] == true",
	Docker: "[CONNECTED] == true",
	// Time to renew: two weeks' notice.
	Domain: "[DOMAIN_EXPIRATION] > 14d",
}

var recordTypes = map[string]uint16{
	"A": dns.TypeA, "AAAA": dns.TypeAAAA, "CNAME": dns.TypeCNAME,
	"MX": dns.TypeMX, "TXT": dns.TypeTXT, "NS": dns.TypeNS,
}

func (s *Spec) validateTarget() error {
	t := strings.TrimSpace(s.Target)
	if t == "" {
		return errors.New("target is required")
	}
	switch s.Type {
	case HTTP:
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			example := "https://shop.example.lan/"
			if !strings.Contains(t, "://") {
				example = "https://" + strings.TrimLeft(t, "/")
			}
			return fmt.Errorf("target %q is not an http:// or https:// URL (e.g. %s)", t, example)
		}
	case TCP, TLS, SMTP, IMAP, SSH:
		if err := checkHostPort(t); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	case Domain:
		if _, err := registeredDomain(t); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	case Docker:
		if !containerNameRE.MatchString(t) {
			return fmt.Errorf("target %q is not a container name or ID", t)
		}
	case DNS:
		if _, ok := dns.IsDomainName(t); !ok {
			return fmt.Errorf("target %q is not a domain name", t)
		}
	case ICMP:
		if strings.ContainsAny(t, "/ ") || (strings.Count(t, ":") == 1) {
			return fmt.Errorf("target %q is not a host name or address (no port for icmp)", t)
		}
	}
	return nil
}

// checkHostPort checks a host:port with a numeric port.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

// ready returns the spec itself when Validate has compiled it, else a validated copy, so
// that concurrent runs of a shared Spec never write to it.
func (s *Spec) ready() (*Spec, error) {
	if s.compiled != nil {
		return s, nil
	}
	c := *s
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// clone copies a spec deeply, without its compiled state, so that the caller may keep
// changing its own.
func (s *Spec) clone() Spec {
	c := *s
	c.compiled = nil
	c.Headers = maps.Clone(s.Headers)
	c.Conditions = slices.Clone(s.Conditions)
	c.Degraded = slices.Clone(s.Degraded)
	if s.FollowRedirects != nil {
		f := *s.FollowRedirects
		c.FollowRedirects = &f
	}
	return c
}

// sameConfig reports whether two specs describe the same probe (compiled state ignored).
func sameConfig(a, b *Spec) bool {
	x, y := *a, *b
	x.compiled, y.compiled = nil, nil
	return reflect.DeepEqual(x, y)
}
