package tower

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/probe"
	"github.com/hinomi/hinomi/internal/push"
	"github.com/hinomi/hinomi/internal/web"
)

// Config is the tower's YAML configuration (docs/tower.md).
type Config struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	// Store is where the tower keeps its state: "sqlite" (the default, a
	// database in DataDir) or a postgres:// URL, which towers of one
	// logical tower share. StorePassword (or StorePasswordFile) is the
	// PostgreSQL password, kept out of the URL.
	Store             string `yaml:"store"`
	StorePassword     string `yaml:"store_password"`
	StorePasswordFile string `yaml:"store_password_file"`
	// URL is how people reach this tower (links in notifications).
	URL string `yaml:"url"`
	// Grace is how long a host may be silent before it is reported.
	Grace        Duration            `yaml:"grace"`
	Agents       []AgentConfig       `yaml:"agents"`
	APIToken     string              `yaml:"api_token"`
	APITokenFile string              `yaml:"api_token_file"`
	Metrics      MetricsConfig       `yaml:"metrics"`
	Alerts       AlertConfig         `yaml:"alerts"`
	Channels     []notify.Channel    `yaml:"channels"`
	Routes       []RouteConfig       `yaml:"routes"`
	Maintenance  []MaintenanceConfig `yaml:"maintenance"`
	Dependencies []DependencyConfig  `yaml:"dependencies"`
	Retention    RetentionConfig     `yaml:"retention"`
	Console      ConsoleConfig       `yaml:"console"`
	TLS          TLSConfig           `yaml:"tls"`
	Probes       []ProbeConfig       `yaml:"probes"`
	// Pushes are push monitors: jobs that report in (docs/tower.md).
	Pushes []push.Spec `yaml:"pushes"`
	// ProbeQuorum is the share of locations (this tower and its peers)
	// that must see a probe down before the service is down.
	ProbeQuorum float64 `yaml:"probe_quorum"`
	// Name is this tower's name among its peers.
	Name      string       `yaml:"name"`
	Peers     []PeerConfig `yaml:"peers"`
	PeerToken string       `yaml:"peer_token"`
	// PeerTokenFile holds PeerToken instead; every secret has such a
	// *_file key, and ${NAME} in a secret or a path is taken from the
	// environment.
	PeerTokenFile string   `yaml:"peer_token_file"`
	PeerGrace     Duration `yaml:"peer_grace"`
	// Lease is how long the leader's lease on a shared store lasts: a
	// dead leader is replaced within about twice that.
	Lease Duration `yaml:"lease"`
	// Logs is the central log store; Syslog the receiver for devices
	// without an agent (logsconfig.go).
	Logs   LogsConfig   `yaml:"logs"`
	Syslog SyslogConfig `yaml:"syslog"`

	path string
	// cert is the TLS pair read from TLS.CertFile and TLS.KeyFile at load.
	cert *tls.Certificate
}

// TLSConfig: the certificate and key the tower serves HTTPS with (PEM
// files, the certificate followed by its intermediates). Both are read
// again on SIGHUP, so a renewed certificate needs no restart.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ConsoleConfig: the status page's title and who may use the console.
type ConsoleConfig struct {
	Title         string     `yaml:"title"`
	Users         []web.User `yaml:"users"`
	SecureCookies bool       `yaml:"secure_cookies"`
	// TrustedProxies: reverse proxies (addresses or prefixes) whose
	// X-Forwarded-For and X-Forwarded-Proto the console believes.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Pages are further status pages, at /status/SLUG.
	Pages []web.Page `yaml:"pages"`
}

// MetricsConfig says who may scrape /metrics: a bearer token (the
// api_token, or this token so that a scraper does not hold the API's), or
// anyone when Public.
type MetricsConfig struct {
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	Public    bool   `yaml:"public"`
}

// AgentConfig is one agent allowed to report.
type AgentConfig struct {
	Name      string   `yaml:"name"`
	Token     string   `yaml:"token"`
	TokenFile string   `yaml:"token_file"`
	Grace     Duration `yaml:"grace"`
}

// AlertConfig says what becomes a notification.
type AlertConfig struct {
	// MinSeverity: agent findings below it are stored but not notified.
	MinSeverity    string     `yaml:"min_severity"`
	For            Duration   `yaml:"for"`
	RepeatInterval Duration   `yaml:"repeat_interval"`
	Flap           FlapConfig `yaml:"flap"`
	// NeverReported (default true): a configured agent that has not
	// reported within its grace of the tower starting (or of a reload
	// adding it) is a silent host, so a host nobody watches is noticed.
	NeverReported *bool `yaml:"never_reported"`
}

// FlapConfig: a signal with `spells` bad spells within `window` is
// reported once as flapping, and again only when stable for `stable`.
type FlapConfig struct {
	Window Duration `yaml:"window"`
	Spells int      `yaml:"spells"`
	Stable Duration `yaml:"stable"`
}

// RetentionConfig bounds the stored records.
type RetentionConfig struct {
	MaxAge   Duration `yaml:"max_age"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// History is how long the status page's probe history is kept
	// (default 2160h, its 90 days).
	History Duration `yaml:"history"`
}

// Duration reads "90s", "5m", "4h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string, or a whole number of days
// ("30d").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if days, ok := strings.CutSuffix(n.Value, "d"); ok {
		if v, err := strconv.Atoi(days); err == nil && v >= 0 && v < 100000 {
			*d = Duration(time.Duration(v) * 24 * time.Hour)
			return nil
		}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 90s, 5m, 4h or 30d", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ByteSize reads "512MiB", "2GiB", "1000000".
type ByteSize int64

// UnmarshalYAML parses a size with an optional KiB/MiB/GiB/KB/MB/GB unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	var v int64
	if _, err := fmt.Sscan(s, &v); err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a size such as 512MiB", n.Line, n.Value)
	}
	*b = ByteSize(v * mult)
	return nil
}

// LoadConfig reads and validates a configuration file. Errors name the
// file, the line and the field.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ParseConfig parses and validates configuration text; name is used in
// errors.
func ParseConfig(b []byte, name string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Config{path: name}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, plainYAMLError(err))
	}
	c.path = name
	if err := c.validate(&root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

var (
	yamlUnknownField = regexp.MustCompile(`^(line \d+): field (\S+) not found in type (\S+)$`)
	yamlWrongType    = regexp.MustCompile("^(line \\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// yamlPlaces names the config's parts for people, not by their Go types.
var yamlPlaces = map[string]string{
	"tower.Config": "at the top level", "tower.AgentConfig": "in an agent", "tower.ProbeConfig": "in a probe",
	"probe.Spec": "in a probe", "tower.AlertConfig": "under alerts", "tower.FlapConfig": "under alerts.flap",
	"notify.Channel": "in a channel", "tower.ConsoleConfig": "under console", "web.User": "in a console user",
	"tower.RetentionConfig": "under retention", "tower.PeerConfig": "in a peer", "tower.RouteConfig": "in a route",
	"tower.MaintenanceConfig": "in a maintenance window", "tower.DependencyConfig": "in a dependency",
	"tower.MetricsConfig": "under metrics", "tower.TLSConfig": "under tls",
	"tower.LogsConfig": "under logs", "tower.SyslogConfig": "under syslog",
}

// plainYAMLError rewrites the YAML decoder's type errors in the config's
// terms: "unknown field colour in an agent", "30 is not a duration".
func plainYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var out []string
	for _, e := range te.Errors {
		if m := yamlUnknownField.FindStringSubmatch(e); m != nil {
			place := yamlPlaces[m[3]]
			if place == "" {
				place = "here"
			}
			e = fmt.Sprintf("%s: unknown field %q %s (docs/tower.md lists the fields)", m[1], m[2], place)
		} else if m := yamlWrongType.FindStringSubmatch(e); m != nil {
			switch m[4] {
			case "time.Duration":
				e = fmt.Sprintf("%s: %s is not a duration: give a unit, e.g. %ss or 5m", m[1], m[3], m[3])
			case "int", "int64", "float64":
				e = fmt.Sprintf("%s: %s is not a number", m[1], m[3])
			case "bool":
				e = fmt.Sprintf("%s: %s is not true or false", m[1], m[3])
			default:
				e = fmt.Sprintf("%s: a %s (%s) does not fit here", m[1], m[2], m[3])
			}
		}
		out = append(out, e)
	}
	return errors.New(strings.Join(out, "\n"))
}

// lineOf finds the line of a field by its path ("agents", 2, "token").
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || p >= len(n.Content) {
				return line
			}
			n = n.Content[p]
			line = n.Line
		}
	}
	return line
}

func (c *Config) validate(root *yaml.Node) error {
	var errs []error
	bad := func(msg string, path ...any) {
		field := make([]string, 0, len(path))
		for _, p := range path {
			field = append(field, fmt.Sprint(p))
		}
		errs = append(errs, fmt.Errorf("line %d: %s: %s", lineOf(root, path...), strings.Join(field, "."), msg))
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7450"
	}
	apiTokenRead := c.readSecret(bad, &c.APIToken, c.APITokenFile, "api_token")
	if c.APIToken != "" && len(c.APIToken) < 16 {
		bad("too short: use at least 16 random characters. "+makeTokenHint, "api_token")
	}
	if apiTokenRead && c.APIToken == "" && !loopbackHost(c.Listen) {
		bad(fmt.Sprintf("%s is reachable from other machines, and api_token is empty: the tower does not listen there without one. %s "+
			"Or listen on 127.0.0.1 behind a proxy.", c.Listen, makeTokenHint), "listen")
	}
	c.readSecret(bad, &c.Metrics.Token, c.Metrics.TokenFile, "metrics", "token")
	if c.Metrics.Token != "" && len(c.Metrics.Token) < 16 {
		bad("too short: use at least 16 random characters (openssl rand -hex 32)", "metrics", "token")
	}
	if err := notify.CheckURL("url", c.URL, false); err != nil {
		bad(strings.TrimPrefix(err.Error(), "url "), "url")
	}
	if c.DataDir == "" {
		bad("required: a directory for the database", "data_dir")
	}
	switch {
	case c.Store == "" || c.Store == "sqlite":
		c.Store = "sqlite"
		if c.StorePassword != "" || c.StorePasswordFile != "" {
			bad("only with a postgres:// store", "store_password")
		}
	case strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://"):
		if u, err := url.Parse(c.Store); err != nil {
			bad(fmt.Sprintf("not a URL: %v", errors.Unwrap(err)), "store")
		} else if _, set := u.User.Password(); set {
			bad("holds a password: put it in store_password_file (or store_password: ${PGPASSWORD}) so that the URL can be shown", "store")
		}
		c.readSecret(bad, &c.StorePassword, c.StorePasswordFile, "store_password")
	default:
		bad(`"sqlite" (the default) or a postgres:// URL`, "store")
	}
	if c.Grace == 0 {
		c.Grace = Duration(60 * time.Second)
	}
	if c.Grace < Duration(time.Second) {
		bad("must be at least 1s", "grace")
	}
	if len(c.Agents) == 0 && len(c.Probes) == 0 && len(c.Pushes) == 0 && len(c.Syslog.UDP)+len(c.Syslog.TCP)+len(c.Syslog.TLS) == 0 {
		bad("list at least one agent (name and token), probe, push monitor or syslog listener: a tower with none watches nothing", "agents")
	}
	c.validatePushes(bad)
	names := map[string]bool{}
	tokens := map[string]bool{}
	for i := range c.Agents {
		a := &c.Agents[i]
		if a.Name == "" {
			bad("required", "agents", i, "name")
		}
		if names[a.Name] {
			bad(fmt.Sprintf("agent %q is listed twice", a.Name), "agents", i, "name")
		}
		names[a.Name] = true
		if !c.readSecret(bad, &a.Token, a.TokenFile, "agents", i, "token") {
			continue
		}
		switch {
		case a.Token == "":
			bad("required (or token_file)", "agents", i, "token")
		case len(a.Token) < 16:
			bad("too short: use at least 16 random characters (openssl rand -hex 16)", "agents", i, "token")
		case tokens[a.Token]:
			bad("the same token is used by two agents", "agents", i, "token")
		}
		tokens[a.Token] = true
		if a.Grace == 0 {
			a.Grace = c.Grace
		}
	}
	if c.Alerts.MinSeverity == "" {
		c.Alerts.MinSeverity = "medium"
	}
	if _, err := finding.ParseSeverity(c.Alerts.MinSeverity); err != nil {
		bad(err.Error(), "alerts", "min_severity")
	}
	if c.Alerts.RepeatInterval == 0 {
		c.Alerts.RepeatInterval = Duration(4 * time.Hour)
	}
	if c.Alerts.Flap.Window == 0 {
		c.Alerts.Flap.Window = Duration(time.Hour)
	}
	if c.Alerts.Flap.Spells == 0 {
		c.Alerts.Flap.Spells = 4
	}
	if c.Alerts.Flap.Spells < 2 {
		bad("must be at least 2 (or leave it out for 4)", "alerts", "flap", "spells")
	}
	if c.Alerts.Flap.Stable == 0 {
		c.Alerts.Flap.Stable = Duration(30 * time.Minute)
	}
	chNames := map[string]bool{}
	for i := range c.Channels {
		if key, err := c.Channels[i].ReadSecrets(os.LookupEnv); err != nil {
			bad(err.Error(), "channels", i, key)
		}
		ch := c.Channels[i]
		if chNames[ch.Name] {
			bad(fmt.Sprintf("channel %q is listed twice", ch.Name), "channels", i, "name")
		}
		chNames[ch.Name] = true
		if _, err := notify.New(ch, nil); err != nil {
			bad(err.Error(), "channels", i)
		}
	}
	known := func(name string) bool { return chNames[name] }
	for i, r := range c.Routes {
		if len(r.Channels) == 0 {
			bad("a route needs at least one channel", "routes", i, "channels")
		}
		for j, ch := range r.Channels {
			if !known(ch) {
				bad(fmt.Sprintf("no channel named %q", ch), "routes", i, "channels", j)
			}
		}
		for j, ch := range r.Fallback {
			if !known(ch) {
				bad(fmt.Sprintf("no channel named %q", ch), "routes", i, "fallback", j)
			}
		}
		if r.Escalate != nil {
			if r.Escalate.After <= 0 {
				bad("required: how long unacknowledged before escalating", "routes", i, "escalate", "after")
			}
			for j, ch := range r.Escalate.Channels {
				if !known(ch) {
					bad(fmt.Sprintf("no channel named %q", ch), "routes", i, "escalate", "channels", j)
				}
			}
		}
		if err := r.Match.validate(); err != nil {
			bad(err.Error(), "routes", i, "match")
		}
	}
	for i := range c.Maintenance {
		if err := c.Maintenance[i].compile(); err != nil {
			bad(err.Error(), "maintenance", i)
		}
	}
	for i, d := range c.Dependencies {
		if d.Host == "" || len(d.Dependents) == 0 {
			bad("needs host and dependents", "dependencies", i)
		}
	}
	c.readSecret(bad, &c.PeerToken, c.PeerTokenFile, "peer_token")
	for i := range c.Peers {
		c.readSecret(bad, &c.Peers[i].Token, c.Peers[i].TokenFile, "peers", i, "token")
	}
	if len(c.Peers) > 0 {
		if c.Name == "" {
			bad("required with peers: this tower's name", "name")
		}
		if len(c.PeerToken) < 16 {
			bad("required with peers: at least 16 characters the peers present", "peer_token")
		}
	}
	for i, p := range c.Peers {
		switch {
		case p.Name == "" || p.Name == c.Name:
			bad("a peer needs its own name, not this tower's", "peers", i, "name")
		case p.URL == "":
			bad("required", "peers", i, "url")
		case notify.CheckURL("url", p.URL, true) != nil:
			bad(strings.TrimPrefix(notify.CheckURL("url", p.URL, true).Error(), "url "), "peers", i, "url")
		case p.Token == "" && p.TokenFile == "":
			bad("required: the peer's peer_token", "peers", i, "token")
		}
	}
	for i := range c.Console.Users {
		u := &c.Console.Users[i]
		if u.Name == "" {
			bad("required", "console", "users", i, "name")
		}
		if !c.readSecret(bad, &u.PasswordHash, u.PasswordHashFile, "console", "users", i, "password_hash") {
			continue
		}
		if err := web.ValidHash(u.PasswordHash); err != nil {
			bad(err.Error()+"; make one with hinomi hash-password (bcrypt) or the argon2 tool (argon2id)", "console", "users", i, "password_hash")
		} else if pw, ok := web.PublishedPassword(u.Name, u.PasswordHash); ok {
			bad(fmt.Sprintf("this is a hash of %q, a published password anyone can guess; make one of your own with: "+
				"printf '%%s' 'a passphrase nobody else knows' | hinomi hash-password", pw), "console", "users", i, "password_hash")
		}
	}
	c.loadTLS(bad)
	if _, err := web.ParseProxies(c.Console.TrustedProxies); err != nil {
		bad(err.Error(), "console", "trusted_proxies")
	}
	slugs := map[string]bool{}
	for i := range c.Console.Pages {
		p := &c.Console.Pages[i]
		if err := web.LoadPage(p, os.ReadFile); err != nil {
			bad(err.Error(), "console", "pages", i)
		}
		if slugs[p.Slug] {
			bad(fmt.Sprintf("status page %q is listed twice", p.Slug), "console", "pages", i, "slug")
		}
		slugs[p.Slug] = true
	}
	probeNames := map[string]bool{}
	for i := range c.Probes {
		p := &c.Probes[i]
		if probeNames[p.Name] {
			bad(fmt.Sprintf("probe %q is listed twice", p.Name), "probes", i, "name")
		}
		probeNames[p.Name] = true
		if p.FailureThreshold < 0 {
			bad("a count of consecutive failed runs, at least 1", "probes", i, "failure_threshold")
		}
		if p.SuccessThreshold < 0 {
			bad("a count of consecutive good runs, at least 1", "probes", i, "success_threshold")
		}
		p.FailureThreshold, p.SuccessThreshold = max(p.FailureThreshold, 1), max(p.SuccessThreshold, 1)
		if err := p.Spec.Validate(); err != nil {
			for _, e := range unjoin(err) {
				var ce *probe.ConditionError
				if errors.As(e, &ce) {
					bad(e.Error(), "probes", i, ce.Field, ce.Index)
				} else {
					bad(e.Error(), "probes", i)
				}
			}
		}
	}
	if c.ProbeQuorum == 0 {
		// A strict majority: with two locations both must agree, so one
		// tower's own network trouble never declares an outage.
		c.ProbeQuorum = 0.51
	}
	if c.ProbeQuorum < 0 || c.ProbeQuorum > 1 {
		bad("a share between 0 and 1, e.g. 0.51 (more than half of the locations)", "probe_quorum")
	}
	if c.Lease == 0 {
		c.Lease = Duration(10 * time.Second)
	}
	if c.Lease < Duration(time.Second) {
		bad("at least 1s", "lease")
	}
	if c.PeerGrace == 0 {
		c.PeerGrace = Duration(30 * time.Second)
	}
	if c.Retention.MaxAge == 0 {
		c.Retention.MaxAge = Duration(30 * 24 * time.Hour)
	}
	if c.Retention.History == 0 {
		c.Retention.History = Duration(DefaultHistoryRetention)
	}
	if c.Retention.History < Duration(24*time.Hour) {
		bad("at least 24h (the status page's default is 2160h, 90 days)", "retention", "history")
	}
	c.checkDurations(bad)
	c.checkLogs(bad)
	return errors.Join(errs...)
}

// readSecret fills a secret from its *_file key or the environment
// (notify.Secret); errors name the key and the file. It says whether the
// value can be used.
func (c *Config) readSecret(bad func(string, ...any), value *string, file string, path ...any) bool {
	key := fmt.Sprint(path[len(path)-1])
	v, err := notify.Secret(key, *value, file, os.LookupEnv)
	if err != nil {
		at := path
		if file != "" {
			at = append(append([]any{}, path[:len(path)-1]...), key+"_file")
		}
		_, msg, _ := strings.Cut(err.Error(), ": ")
		bad(msg, at...)
		return false
	}
	*value = v
	return true
}

// loopbackHost: the listen address is reachable only from this machine.
// A host name other than localhost cannot be told here; Listen checks the
// address it actually binds.
func loopbackHost(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	switch host {
	case "":
		return false // every interface
	case "localhost":
		return true
	}
	ip := net.ParseIP(host)
	return ip == nil || ip.IsLoopback()
}

// minRepeat is the shortest repeat_interval: a reminder more often than
// once a minute is a flood, not a reminder (and 1ns would send one every
// evaluation).
const minRepeat = Duration(time.Minute)

// checkDurations refuses lengths of time that cannot be meant: negative
// ones, and reminders more often than minRepeat.
func (c *Config) checkDurations(bad func(string, ...any)) {
	type dur struct {
		d    Duration
		path []any
	}
	ds := []dur{
		{c.PeerGrace, []any{"peer_grace"}}, {c.Alerts.For, []any{"alerts", "for"}},
		{c.Alerts.Flap.Window, []any{"alerts", "flap", "window"}}, {c.Alerts.Flap.Stable, []any{"alerts", "flap", "stable"}},
		{c.Retention.MaxAge, []any{"retention", "max_age"}},
	}
	for i, a := range c.Agents {
		ds = append(ds, dur{a.Grace, []any{"agents", i, "grace"}})
	}
	for i, r := range c.Routes {
		ds = append(ds, dur{r.GroupWait, []any{"routes", i, "group_wait"}})
		if r.Escalate != nil {
			ds = append(ds, dur{r.Escalate.After, []any{"routes", i, "escalate", "after"}})
		}
	}
	for i, m := range c.Maintenance {
		ds = append(ds, dur{m.Duration, []any{"maintenance", i, "duration"}})
	}
	repeats := []dur{{c.Alerts.RepeatInterval, []any{"alerts", "repeat_interval"}}}
	for i, r := range c.Routes {
		if r.RepeatInterval != 0 { // 0: the alerts' repeat_interval
			repeats = append(repeats, dur{r.RepeatInterval, []any{"routes", i, "repeat_interval"}})
		}
	}
	for _, d := range ds {
		if d.d < 0 {
			bad(fmt.Sprintf("%s is negative: give a length of time such as 90s, 5m or 4h", time.Duration(d.d)), d.path...)
		}
	}
	for _, d := range repeats {
		if d.d < minRepeat {
			bad(fmt.Sprintf("%s is too short: at least %s (reminders are for outages still going on)", time.Duration(d.d), time.Duration(minRepeat)), d.path...)
		}
	}
}

// unjoin splits an errors.Join.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// agent returns the agent a token belongs to.
func (c *Config) agentByToken(token string) *AgentConfig {
	for i := range c.Agents {
		if constantTimeEqual(c.Agents[i].Token, token) {
			return &c.Agents[i]
		}
	}
	return nil
}

// loadTLS reads the certificate and key named under tls, so that a file
// that is missing, unreadable or not the key of that certificate stops the
// load (at start: the tower does not start; on reload: the old pair stays).
func (c *Config) loadTLS(bad func(string, ...any)) {
	t := c.TLS
	switch {
	case t.CertFile == "" && t.KeyFile == "":
		return
	case t.CertFile == "":
		bad("required with tls.key_file: the PEM certificate file (with its intermediates)", "tls", "cert_file")
		return
	case t.KeyFile == "":
		bad("required with tls.cert_file: the PEM private key file", "tls", "key_file")
		return
	}
	// Read as secrets are: ${CREDENTIALS_DIRECTORY}/tls.key works under
	// systemd's LoadCredential=, for a key only root may read.
	read := func(key, file string) (string, []byte, bool) {
		path, err := notify.Secret(key, file, "", os.LookupEnv)
		if err != nil {
			_, msg, _ := strings.Cut(err.Error(), ": ")
			bad(msg, "tls", key+"_file")
			return "", nil, false
		}
		b, err := os.ReadFile(path)
		if err != nil {
			bad(fileError(err), "tls", key+"_file")
			return "", nil, false
		}
		return path, b, true
	}
	certPath, certPEM, okCert := read("cert", t.CertFile)
	keyPath, keyPEM, okKey := read("key", t.KeyFile)
	if !okCert || !okKey {
		return
	}
	t.CertFile, t.KeyFile = certPath, keyPath
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := err.Error()
		at := "key_file"
		switch {
		case strings.Contains(msg, "does not match"):
			msg = fmt.Sprintf("%s is not the private key of the certificate in %s", t.KeyFile, t.CertFile)
		case strings.Contains(msg, "certificate input"):
			at, msg = "cert_file", fmt.Sprintf("%s holds no PEM certificate (%s)", t.CertFile, strings.TrimPrefix(msg, "tls: "))
		default:
			msg = fmt.Sprintf("%s with %s: %s", t.KeyFile, t.CertFile, strings.TrimPrefix(msg, "tls: "))
		}
		bad(msg, "tls", at)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		bad(fmt.Sprintf("%s: %v", t.CertFile, err), "tls", "cert_file")
		return
	}
	pair.Leaf = leaf
	c.cert = &pair
}

// fileError says why a file could not be read, without Go's "open" prefix.
func fileError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return err.Error()
}
