package importer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/probe"
)

// kumaBackup is Uptime Kuma's JSON backup (Settings → Backup → Export,
// versions 1.x): {version, notificationList, monitorList}.
type kumaBackup struct {
	Version          string             `json:"version"`
	NotificationList []kumaNotification `json:"notificationList"`
	MonitorList      []kumaMonitor      `json:"monitorList"`
}

type kumaNotification struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Config string `json:"config"` // the settings, as a JSON string
	Active *flag  `json:"active"`
}

type kumaMonitor struct {
	ID                 int             `json:"id"`
	Name               string          `json:"name"`
	Type               string          `json:"type"`
	URL                string          `json:"url"`
	Method             string          `json:"method"`
	Hostname           string          `json:"hostname"`
	Port               json.Number     `json:"port"`
	Interval           float64         `json:"interval"`
	Timeout            float64         `json:"timeout"`
	MaxRetries         int             `json:"maxretries"`
	Keyword            string          `json:"keyword"`
	InvertKeyword      flag            `json:"invertKeyword"`
	IgnoreTLS          flag            `json:"ignoreTls"`
	UpsideDown         flag            `json:"upsideDown"`
	MaxRedirects       *int            `json:"maxredirects"`
	AcceptedStatus     []string        `json:"accepted_statuscodes"`
	DNSResolveType     string          `json:"dns_resolve_type"`
	DNSResolveServer   string          `json:"dns_resolve_server"`
	Headers            string          `json:"headers"`
	Body               string          `json:"body"`
	ExpiryNotification flag            `json:"expiryNotification"`
	JSONPath           string          `json:"jsonPath"`
	ExpectedValue      string          `json:"expectedValue"`
	JSONPathOperator   string          `json:"jsonPathOperator"`
	Active             *flag           `json:"active"`
	Parent             *int            `json:"parent"`
	Notifications      map[string]flag `json:"notificationIDList"`
	BasicAuthUser      string          `json:"basic_auth_user"`
	BasicAuthPass      string          `json:"basic_auth_pass"`
}

// flag reads the booleans Uptime Kuma writes as true/false, 0/1 or "1".
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "true", "1":
		*f = true
	case "false", "0", "null", "":
		*f = false
	default:
		return fmt.Errorf("%s is not true or false", b)
	}
	return nil
}

// Kuma reads an Uptime Kuma JSON backup.
func Kuma(data []byte) (*Result, error) {
	var b kumaBackup
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("not an Uptime Kuma backup: %w", err)
	}
	if b.MonitorList == nil && b.NotificationList == nil {
		return nil, fmt.Errorf("not an Uptime Kuma backup: it has neither monitorList nor notificationList")
	}
	r := &Result{Config: Config{Listen: "127.0.0.1:8080", DataDir: "/var/lib/hinomi/tower"}}

	channelOf := map[string]string{}
	for _, n := range b.NotificationList {
		what := fmt.Sprintf("notification %q", n.Name)
		if n.Active != nil && !*n.Active {
			r.skip(what, "disabled in Uptime Kuma")
			continue
		}
		ch, err := kumaChannel(n)
		if err != nil {
			r.skip(what, "%v", err)
			continue
		}
		if name, ok := r.addChannel(ch, what); ok {
			channelOf[strconv.Itoa(n.ID)] = name
		}
	}

	groupName := map[int]string{}
	for _, m := range b.MonitorList {
		if m.Type == "group" {
			groupName[m.ID] = m.Name
		}
	}
	byProbe := map[string][]string{}
	for _, m := range b.MonitorList {
		what := fmt.Sprintf("monitor %q", m.Name)
		if m.Type == "group" {
			continue
		}
		if m.Active != nil && !*m.Active {
			r.skip(what, "paused in Uptime Kuma")
			continue
		}
		p, why := kumaProbe(m)
		if why != "" {
			r.skip(what, "%s", why)
			continue
		}
		if m.Parent != nil {
			p.Group = groupName[*m.Parent]
		}
		var chans []string
		ids := make([]string, 0, len(m.Notifications))
		for id, on := range m.Notifications {
			if on {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			if ch, ok := channelOf[id]; ok {
				chans = append(chans, ch)
			}
		}
		if name, ok := r.addProbe(p, what); ok {
			byProbe[name] = chans
		}
	}
	r.routeProbes(byProbe)
	return r, nil
}

// kumaProbe maps one monitor; why says what stops it.
func kumaProbe(m kumaMonitor) (Probe, string) {
	p := Probe{Name: strings.TrimSpace(m.Name), Public: true}
	if p.Name == "" {
		return p, "it has no name"
	}
	if m.UpsideDown {
		return p, "upside-down mode (up when the service fails) has no equivalent"
	}
	interval := time.Duration(m.Interval * float64(time.Second))
	if interval <= 0 {
		interval = time.Minute
	}
	p.Interval = Duration(interval)
	timeout := time.Duration(m.Timeout * float64(time.Second))
	if timeout <= 0 || timeout > interval {
		timeout = min(interval*8/10, 48*time.Second) // Kuma's default: 80 % of the interval
	}
	p.Timeout = Duration(timeout)
	if m.MaxRetries > 0 {
		p.FailureThreshold = m.MaxRetries + 1
	}
	switch m.Type {
	case "http", "keyword", "json-query":
		p.Type, p.Target = probe.HTTP, m.URL
		if meth := strings.ToUpper(m.Method); meth != "" && meth != "GET" {
			p.Method = meth
		}
		p.Body = m.Body
		if m.Headers != "" {
			var h map[string]string
			if err := json.Unmarshal([]byte(m.Headers), &h); err != nil {
				return p, fmt.Sprintf("its headers are not a JSON object of strings: %v", err)
			}
			p.Headers = h
		}
		if m.BasicAuthUser != "" {
			if p.Headers == nil {
				p.Headers = map[string]string{}
			}
			p.Headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(m.BasicAuthUser+":"+m.BasicAuthPass))
		}
		p.InsecureSkipVerify = bool(m.IgnoreTLS)
		if m.MaxRedirects != nil && *m.MaxRedirects == 0 {
			f := false
			p.FollowRedirects = &f
		}
		conds, why := kumaStatusConditions(m.AcceptedStatus)
		if why != "" {
			return p, why
		}
		p.Conditions = conds
		switch m.Type {
		case "keyword":
			op := "contains"
			if m.InvertKeyword {
				op = "not contains"
			}
			p.Conditions = append(p.Conditions, "[BODY] "+op+" "+quote(m.Keyword))
		case "json-query":
			c, why := kumaJSONCondition(m)
			if why != "" {
				return p, why
			}
			p.Conditions = append(p.Conditions, c)
		}
		if bool(m.ExpiryNotification) && strings.HasPrefix(strings.ToLower(m.URL), "https://") {
			p.Degraded = append(p.Degraded, "[CERTIFICATE_EXPIRATION] > 7d")
		}
	case "port":
		p.Type, p.Target = probe.TCP, joinPort(m.Hostname, m.Port.String())
	case "ping":
		p.Type, p.Target = probe.ICMP, m.Hostname
	case "dns":
		p.Type, p.Target = probe.DNS, m.Hostname
		p.RecordType = strings.ToUpper(m.DNSResolveType)
		port := m.Port.String()
		if port == "" || port == "0" {
			port = "53"
		}
		if m.DNSResolveServer != "" {
			p.Resolver = joinPort(m.DNSResolveServer, port)
		}
	case "push":
		return p, "push monitors (a job reports in) are not imported yet"
	case "docker":
		return p, "container monitors are not imported: the agent on that host reports its containers' restarts and health"
	default:
		return p, fmt.Sprintf("%s monitors are not probed by hinomi", m.Type)
	}
	return p, ""
}

func joinPort(host, port string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// kumaStatusConditions writes the accepted status codes ("200-299",
// "301") as conditions.
func kumaStatusConditions(accepted []string) ([]string, string) {
	if len(accepted) == 0 {
		return []string{"[STATUS] >= 200", "[STATUS] <= 299"}, "" // Kuma's default
	}
	type span struct{ lo, hi int }
	var spans []span
	for _, a := range accepted {
		lo, hi, found := strings.Cut(strings.TrimSpace(a), "-")
		l, err1 := strconv.Atoi(lo)
		h := l
		var err2 error
		if found {
			h, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || h < l || l < 100 || h > 999 {
			return nil, fmt.Sprintf("accepted status code %q is not a code or a range", a)
		}
		spans = append(spans, span{l, h})
	}
	if len(spans) == 1 {
		if spans[0].lo == spans[0].hi {
			return []string{fmt.Sprintf("[STATUS] == %d", spans[0].lo)}, ""
		}
		return []string{fmt.Sprintf("[STATUS] >= %d", spans[0].lo), fmt.Sprintf("[STATUS] <= %d", spans[0].hi)}, ""
	}
	var codes []string
	for _, s := range spans {
		for c := s.lo; c <= s.hi; c++ {
			codes = append(codes, strconv.Itoa(c))
		}
	}
	return []string{"[STATUS] in (" + strings.Join(codes, ", ") + ")"}, ""
}

var jsonataPath = regexp.MustCompile(`^\$?\.?([A-Za-z_][A-Za-z0-9_-]*|\[[0-9]+\])(\.[A-Za-z_][A-Za-z0-9_-]*|\[[0-9]+\])*$`)

// kumaJSONCondition maps a json-query monitor's simple JSONata path.
func kumaJSONCondition(m kumaMonitor) (string, string) {
	path := strings.TrimSpace(m.JSONPath)
	if !jsonataPath.MatchString(path) {
		return "", fmt.Sprintf("its JSON query %q is a JSONata expression, not a plain path", m.JSONPath)
	}
	path = strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	if !strings.HasPrefix(path, "[") {
		path = "." + path
	}
	op := m.JSONPathOperator
	switch op {
	case "", "==":
		op = "=="
	case "!=", "<", "<=", ">", ">=", "contains":
	default:
		return "", fmt.Sprintf("its JSON query operator %q has no equivalent", op)
	}
	return "[BODY]" + path + " " + op + " " + quote(m.ExpectedValue), ""
}

// quote writes s as a condition's string value.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s) + `"`
}

// kumaChannel maps a notification's settings.
func kumaChannel(n kumaNotification) (notify.Channel, error) {
	var v map[string]any
	if err := json.Unmarshal([]byte(n.Config), &v); err != nil {
		return notify.Channel{}, fmt.Errorf("its settings are not JSON: %v", err)
	}
	str := func(k string) string {
		switch x := v[k].(type) {
		case string:
			return strings.TrimSpace(x)
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return ""
	}
	typ := str("type")
	ch := notify.Channel{Name: slug(n.Name)}
	switch typ {
	case "discord":
		ch.Type, ch.URL = notify.TypeDiscord, str("discordWebhookUrl")
	case "slack":
		ch.Type, ch.URL = notify.TypeSlack, str("slackwebhookURL")
	case "telegram":
		ch.Type, ch.BotToken, ch.ChatID, ch.APIURL = notify.TypeTelegram, str("telegramBotToken"), str("telegramChatID"), str("telegramServerUrl")
		if id, err := strconv.ParseInt(str("telegramMessageThreadID"), 10, 64); err == nil {
			ch.ThreadID = id
		}
	case "ntfy":
		ch.Type, ch.Server, ch.Topic = notify.TypeNtfy, str("ntfyserverurl"), str("ntfytopic")
		switch str("ntfyAuthenticationMethod") {
		case "", "none":
		case "accessToken":
			ch.Token = str("ntfyaccesstoken")
		default:
			return ch, fmt.Errorf("ntfy with a user name and password: hinomi's ntfy channel takes an access token")
		}
	case "smtp":
		ch.Type, ch.Host, ch.Username, ch.Password, ch.From = notify.TypeSMTP, str("smtpHost"), str("smtpUsername"), str("smtpPassword"), str("smtpFrom")
		if p, err := strconv.Atoi(str("smtpPort")); err == nil {
			ch.Port = p
		}
		if s, ok := v["smtpSecure"].(bool); ok && s {
			ch.TLS = notify.SMTPTLS
		}
		for _, to := range strings.Split(str("smtpTo"), ",") {
			if to = strings.TrimSpace(to); to != "" {
				ch.To = append(ch.To, to)
			}
		}
	case "matrix":
		ch.Type, ch.Server, ch.Room, ch.Token = notify.TypeMatrix, str("homeserverUrl"), str("internalRoomId"), str("accessToken")
	case "teams":
		ch.Type, ch.URL = notify.TypeTeams, str("webhookUrl")
	case "gotify":
		ch.Type, ch.Server, ch.Token = notify.TypeGotify, str("gotifyserverurl"), str("gotifyapplicationToken")
	case "pushover":
		ch.Type, ch.Token, ch.User, ch.Device = notify.TypePushover, str("pushoverapptoken"), str("pushoveruserkey"), str("pushoverdevice")
	case "PagerDuty":
		ch.Type, ch.RoutingKey = notify.TypePagerDuty, str("pagerdutyIntegrationKey")
		if u := strings.TrimSuffix(str("pagerdutyIntegrationUrl"), "/v2/enqueue"); u != "" && u != notify.DefaultPagerDuty {
			ch.APIURL = u
		}
	case "Opsgenie":
		ch.Type, ch.APIKey = notify.TypeOpsgenie, str("opsgenieApiKey")
		if strings.EqualFold(str("opsgenieRegion"), "eu") {
			ch.APIURL = "https://api.eu.opsgenie.com"
		}
	case "mattermost":
		ch.Type, ch.URL = notify.TypeMattermost, str("mattermostWebhookUrl")
	case "rocket.chat":
		ch.Type, ch.URL = notify.TypeRocketChat, str("rocketwebhookURL")
	case "GoogleChat":
		ch.Type, ch.URL = notify.TypeGoogleChat, str("googleChatWebhookURL")
	case "signal":
		ch.Type, ch.Number = notify.TypeSignal, str("signalNumber")
		ch.Server = strings.TrimSuffix(strings.TrimSuffix(str("signalURL"), "/"), "/v2/send")
		for _, r := range strings.Split(str("signalRecipients"), ",") {
			if r = strings.TrimSpace(r); r != "" {
				ch.Recipients = append(ch.Recipients, r)
			}
		}
	case "webhook":
		return ch, fmt.Errorf("the webhook body Uptime Kuma posts is its own, while hinomi's webhook channel posts Alertmanager's webhook JSON, so its receiver must be changed first")
	case "":
		return ch, fmt.Errorf("its settings name no type")
	default:
		return ch, fmt.Errorf("hinomi has no %s channel", typ)
	}
	return ch, nil
}
