package importer

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/probe"
)

// gatusConfig is the part of Gatus's config.yaml an import reads.
type gatusConfig struct {
	Alerting          map[string]yaml.Node `yaml:"alerting"`
	Endpoints         []gatusEndpoint      `yaml:"endpoints"`
	ExternalEndpoints []struct {
		Name string `yaml:"name"`
	} `yaml:"external-endpoints"`
	Suites []struct {
		Name string `yaml:"name"`
	} `yaml:"suites"`
}

type gatusEndpoint struct {
	Name       string            `yaml:"name"`
	Group      string            `yaml:"group"`
	URL        string            `yaml:"url"`
	Method     string            `yaml:"method"`
	Body       string            `yaml:"body"`
	Headers    map[string]string `yaml:"headers"`
	Interval   string            `yaml:"interval"`
	Enabled    *bool             `yaml:"enabled"`
	Conditions []string          `yaml:"conditions"`
	Client     struct {
		Insecure       bool   `yaml:"insecure"`
		IgnoreRedirect bool   `yaml:"ignore-redirect"`
		Timeout        string `yaml:"timeout"`
		DNSResolver    string `yaml:"dns-resolver"`
	} `yaml:"client"`
	DNS *struct {
		QueryName string `yaml:"query-name"`
		QueryType string `yaml:"query-type"`
	} `yaml:"dns"`
	SSH    *yaml.Node   `yaml:"ssh"`
	Alerts []gatusAlert `yaml:"alerts"`
}

type gatusAlert struct {
	Type             string `yaml:"type"`
	Enabled          *bool  `yaml:"enabled"`
	FailureThreshold int    `yaml:"failure-threshold"`
	SuccessThreshold int    `yaml:"success-threshold"`
}

// Gatus reads a Gatus configuration: config.yaml, or the files of a
// configuration directory, which Gatus merges (their alerting providers
// together, their endpoints one after the other).
func Gatus(files ...[]byte) (*Result, error) {
	var cfg gatusConfig
	for i, data := range files {
		var part gatusConfig
		if err := yaml.Unmarshal(data, &part); err != nil {
			if len(files) > 1 {
				return nil, fmt.Errorf("file %d is not a Gatus configuration: %w", i+1, err)
			}
			return nil, fmt.Errorf("not a Gatus configuration: %w", err)
		}
		for k, v := range part.Alerting {
			if cfg.Alerting == nil {
				cfg.Alerting = map[string]yaml.Node{}
			}
			cfg.Alerting[k] = v
		}
		cfg.Endpoints = append(cfg.Endpoints, part.Endpoints...)
		cfg.ExternalEndpoints = append(cfg.ExternalEndpoints, part.ExternalEndpoints...)
		cfg.Suites = append(cfg.Suites, part.Suites...)
	}
	if len(cfg.Endpoints) == 0 && len(cfg.ExternalEndpoints) == 0 {
		return nil, fmt.Errorf("not a Gatus configuration: it has no endpoints")
	}
	r := &Result{Config: Config{Listen: "127.0.0.1:8080", DataDir: "/var/lib/hinomi/tower"}}

	// Channels from the alerting providers, by Gatus's alert type, and
	// each provider's default alert thresholds.
	channelOf := map[string]string{}
	defaults := map[string]gatusAlert{}
	types := make([]string, 0, len(cfg.Alerting))
	for t := range cfg.Alerting {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		node := cfg.Alerting[t]
		what := "alerting provider " + t
		var extra struct {
			Default   gatusAlert  `yaml:"default-alert"`
			Overrides []yaml.Node `yaml:"overrides"`
		}
		if err := node.Decode(&extra); err == nil {
			defaults[t] = extra.Default
			if len(extra.Overrides) > 0 {
				r.skip(what+" overrides", "group-specific overrides are not imported: every group gets the provider's main settings")
			}
		}
		ch, err := gatusChannel(t, &node)
		if err != nil {
			r.skip(what, "%v", err)
			continue
		}
		if name, ok := r.addChannel(ch, what); ok {
			channelOf[t] = name
		}
	}

	byProbe := map[string][]string{}
	for _, e := range cfg.Endpoints {
		what := fmt.Sprintf("endpoint %q", e.Name)
		if e.Enabled != nil && !*e.Enabled {
			r.skip(what, "disabled in Gatus")
			continue
		}
		p, why := gatusProbe(e)
		if why != "" {
			r.skip(what, "%s", why)
			continue
		}
		if p.Type == probe.SSH && (e.SSH != nil || e.Body != "") {
			r.skip("ssh login and command of "+what, "%s", sshWhy)
		}
		var chans []string
		for _, a := range e.Alerts {
			if a.Enabled != nil && !*a.Enabled {
				continue
			}
			ch, ok := channelOf[a.Type]
			if !ok {
				if _, configured := cfg.Alerting[a.Type]; !configured {
					r.skip(fmt.Sprintf("%s alert of %s", a.Type, what), "no alerting provider %q is configured", a.Type)
				}
				continue
			}
			// The provider's default alert, else Gatus's defaults: 3
			// failures to alert, 2 successes to resolve.
			d := defaults[a.Type]
			p.FailureThreshold = max(p.FailureThreshold, cmpOr(a.FailureThreshold, cmpOr(d.FailureThreshold, 3)))
			p.SuccessThreshold = max(p.SuccessThreshold, cmpOr(a.SuccessThreshold, cmpOr(d.SuccessThreshold, 2)))
			chans = append(chans, ch)
		}
		if name, ok := r.addProbe(p, what); ok {
			byProbe[name] = chans
		}
	}
	for _, e := range cfg.ExternalEndpoints {
		r.skip(fmt.Sprintf("external endpoint %q", e.Name), "pushed results (external endpoints) are not imported yet")
	}
	for _, s := range cfg.Suites {
		r.skip(fmt.Sprintf("suite %q", s.Name), "multi-step suites have no equivalent in hinomi")
	}
	r.routeProbes(byProbe)
	return r, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// gatusProbe maps an endpoint; why says what stops it.
func gatusProbe(e gatusEndpoint) (Probe, string) {
	p := Probe{Name: e.Name, Group: e.Group, Conditions: e.Conditions, Public: true}
	if strings.TrimSpace(p.Name) == "" {
		return p, "it has no name"
	}
	interval := time.Minute // Gatus's default
	if e.Interval != "" {
		d, err := time.ParseDuration(e.Interval)
		if err != nil {
			return p, fmt.Sprintf("interval %q is not a duration", e.Interval)
		}
		interval = d
	}
	p.Interval = Duration(interval)
	timeout := 10 * time.Second // Gatus's client default
	if e.Client.Timeout != "" {
		d, err := time.ParseDuration(e.Client.Timeout)
		if err != nil {
			return p, fmt.Sprintf("client timeout %q is not a duration", e.Client.Timeout)
		}
		timeout = d
	}
	p.Timeout = Duration(min(timeout, interval))
	if e.DNS != nil {
		p.Type = probe.DNS
		p.Target = e.DNS.QueryName
		p.RecordType = strings.ToUpper(e.DNS.QueryType)
		p.Resolver = dnsResolver(e.URL)
		return p, ""
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Scheme == "" {
		return p, fmt.Sprintf("url %q has no scheme hinomi knows", e.URL)
	}
	switch u.Scheme {
	case "http", "https":
		p.Type, p.Target = probe.HTTP, e.URL
		p.Method = strings.ToUpper(e.Method)
		if p.Method == "GET" {
			p.Method = ""
		}
		p.Body, p.Headers = e.Body, e.Headers
		p.InsecureSkipVerify = e.Client.Insecure
		// Gatus reuses its connections: its [RESPONSE_TIME] thresholds
		// were set on reused connections, without connecting or the TLS
		// handshake, and they keep meaning that here.
		p.KeepAlive = true
		if e.Client.IgnoreRedirect {
			f := false
			p.FollowRedirects = &f
		}
	case "tcp":
		p.Type, p.Target = probe.TCP, u.Host
	case "tls":
		p.Type, p.Target = probe.TLS, u.Host
		p.InsecureSkipVerify = e.Client.Insecure
	case "icmp":
		p.Type, p.Target = probe.ICMP, u.Hostname()
	case "starttls":
		// Gatus's STARTTLS endpoint is an SMTP server's.
		p.Type, p.Target, p.TLS = probe.SMTP, u.Host, "starttls"
		p.InsecureSkipVerify = e.Client.Insecure
	case "ssh":
		p.Type, p.Target = probe.SSH, u.Host
		if u.Port() == "" {
			p.Target = net.JoinHostPort(u.Hostname(), "22") // Gatus's default
		}
	case "udp", "sctp", "ws", "wss", "grpc", "grpcs":
		return p, u.Scheme + " endpoints are not probed by hinomi"
	default:
		return p, fmt.Sprintf("url scheme %q is not probed by hinomi", u.Scheme)
	}
	return p, ""
}

// sshWhy is why a Gatus ssh endpoint's login, command and [STATUS] are left out.
const sshWhy = "hinomi's ssh probe reads the server's banner; it does not log in to run a command"

// dnsResolver turns Gatus's DNS endpoint url ("8.8.8.8", "tcp://1.1.1.1:53")
// into host:port.
func dnsResolver(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return net.JoinHostPort(s, "53")
	}
	return s
}

// gatusChannel maps an alerting provider's settings.
func gatusChannel(typ string, node *yaml.Node) (notify.Channel, error) {
	var v map[string]any
	if err := node.Decode(&v); err != nil {
		return notify.Channel{}, err
	}
	str := func(k string) string {
		if s, ok := v[k].(string); ok {
			return s
		}
		if n, ok := v[k].(int); ok {
			return fmt.Sprint(n)
		}
		return ""
	}
	ch := notify.Channel{Name: typ}
	switch typ {
	case "slack":
		ch.Type, ch.URL = notify.TypeSlack, str("webhook-url")
	case "discord":
		ch.Type, ch.URL = notify.TypeDiscord, str("webhook-url")
	case "teams-workflows", "teams":
		ch.Type, ch.URL = notify.TypeTeams, str("webhook-url")
		if typ == "teams" {
			return ch, fmt.Errorf("the Office 365 connector webhooks it uses were retired by Microsoft: create a Workflows webhook and use it as a teams channel")
		}
	case "mattermost":
		ch.Type, ch.URL = notify.TypeMattermost, str("webhook-url")
	case "rocketchat":
		ch.Type, ch.URL = notify.TypeRocketChat, str("webhook-url")
	case "googlechat":
		ch.Type, ch.URL = notify.TypeGoogleChat, str("webhook-url")
	case "telegram":
		ch.Type, ch.BotToken, ch.ChatID, ch.APIURL = notify.TypeTelegram, str("token"), str("id"), str("api-url")
	case "ntfy":
		ch.Type, ch.Server, ch.Topic, ch.Token = notify.TypeNtfy, str("url"), str("topic"), str("token")
	case "matrix":
		ch.Type, ch.Server, ch.Room, ch.Token = notify.TypeMatrix, str("server-url"), str("internal-room-id"), str("access-token")
		if ch.Server == "" {
			ch.Server = "https://matrix-client.matrix.org" // Gatus's default homeserver
		}
	case "gotify":
		ch.Type, ch.Server, ch.Token = notify.TypeGotify, str("server-url"), str("token")
	case "pushover":
		ch.Type, ch.Token, ch.User, ch.Device = notify.TypePushover, str("application-token"), str("user-key"), str("device")
	case "pagerduty":
		ch.Type, ch.RoutingKey = notify.TypePagerDuty, str("integration-key")
	case "opsgenie":
		ch.Type, ch.APIKey = notify.TypeOpsgenie, str("api-key")
	case "signal":
		ch.Type, ch.Server, ch.Number = notify.TypeSignal, str("api-url"), str("number")
		if rs, ok := v["recipients"].([]any); ok {
			for _, x := range rs {
				ch.Recipients = append(ch.Recipients, fmt.Sprint(x))
			}
		}
	case "email":
		ch.Type, ch.Host, ch.From, ch.Username, ch.Password = notify.TypeSMTP, str("host"), str("from"), str("username"), str("password")
		if p, ok := v["port"].(int); ok {
			ch.Port = p
		}
		for _, to := range strings.Split(str("to"), ",") {
			if to = strings.TrimSpace(to); to != "" {
				ch.To = append(ch.To, to)
			}
		}
		if ch.Port == 465 {
			ch.TLS = notify.SMTPTLS
		}
	case "custom":
		return ch, fmt.Errorf("a custom request template has no equivalent; hinomi's webhook channel posts Alertmanager's webhook JSON")
	default:
		return ch, fmt.Errorf("hinomi has no %s channel", typ)
	}
	return ch, nil
}
