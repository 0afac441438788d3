package tower

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/notify"
)

// LogsConfig is the central log store's section (docs/logs.md): where the
// lines agents ship and syslog senders send are kept, for how long, and
// how fast one host may write.
type LogsConfig struct {
	// Store is "embedded" (the default: a store under data_dir/logs),
	// "victorialogs:http://HOST:9428", or "off".
	Store string `yaml:"store"`
	// MaxAge and MaxBytes bound the embedded store: older lines, and the
	// oldest beyond the size, are dropped.
	MaxAge   Duration `yaml:"max_age"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// RateLimit is the lines a second one host may store on average,
	// Burst how many at once; lines past them are dropped and counted in
	// a line stored in their place.
	RateLimit int `yaml:"rate_limit"`
	Burst     int `yaml:"burst"`
}

// SyslogConfig is the syslog receiver's section (docs/syslog.md), for
// devices without an agent.
type SyslogConfig struct {
	// UDP, TCP and TLS are addresses to listen on, e.g. "0.0.0.0:514"
	// (TLS: RFC 5425, usually port 6514).
	UDP []string `yaml:"udp"`
	TCP []string `yaml:"tcp"`
	TLS []string `yaml:"tls"`
	// CertFile and KeyFile are the TLS listeners' pair (default: the
	// tower's own tls pair).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Allow lists the senders (addresses or prefixes such as
	// 192.168.1.0/24) whose messages are taken; empty: any.
	Allow []string `yaml:"allow"`

	allow []netip.Prefix
}

const (
	defaultLogsMaxAge = 30 * 24 * time.Hour
	defaultRateLimit  = 5000
)

// checkLogs validates and completes the logs and syslog sections.
func (c *Config) checkLogs(bad func(string, ...any)) {
	l := &c.Logs
	switch {
	case l.Store == "" || l.Store == "embedded":
		l.Store = "embedded"
	case l.Store == "off":
	case strings.HasPrefix(l.Store, "victorialogs:"):
		if err := notify.CheckURL("url", strings.TrimPrefix(l.Store, "victorialogs:"), false); err != nil {
			bad("want victorialogs:http://HOST:9428 ("+strings.TrimPrefix(err.Error(), "url ")+")", "logs", "store")
		}
	default:
		bad(`want embedded (the default), victorialogs:http://HOST:9428 or off`, "logs", "store")
	}
	if l.MaxAge == 0 {
		l.MaxAge = Duration(defaultLogsMaxAge)
	}
	if l.MaxAge < Duration(time.Hour) {
		bad("at least 1h", "logs", "max_age")
	}
	if l.RateLimit == 0 {
		l.RateLimit = defaultRateLimit
	}
	switch {
	case l.RateLimit < 0:
		bad("lines a second, at least 1", "logs", "rate_limit")
	case l.Burst == 0:
		l.Burst = 10 * l.RateLimit
	case l.Burst < l.RateLimit:
		bad("at least rate_limit", "logs", "burst")
	}
	s := &c.Syslog
	for _, group := range []struct {
		key   string
		addrs []string
	}{{"udp", s.UDP}, {"tcp", s.TCP}, {"tls", s.TLS}} {
		for i, a := range group.addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("want HOST:PORT, e.g. 0.0.0.0:514", "syslog", group.key, i)
			}
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		bad("cert_file and key_file go together", "syslog", "cert_file")
	}
	if len(s.TLS) > 0 && s.CertFile == "" && c.TLS.CertFile == "" {
		bad("a TLS listener needs syslog.cert_file and key_file, or the tower's tls pair", "syslog", "tls")
	}
	s.allow = nil
	for i, a := range s.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			addr, aerr := netip.ParseAddr(a)
			if aerr != nil {
				bad("want an address or a prefix such as 192.168.1.0/24", "syslog", "allow", i)
				continue
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		s.allow = append(s.allow, p.Masked())
	}
	if len(s.UDP)+len(s.TCP)+len(s.TLS) > 0 && l.Store == "off" {
		bad("the syslog receiver stores what it receives: logs.store cannot be off", "syslog")
	}
}

// allowed reports whether a syslog sender may send.
func (s *SyslogConfig) allowed(addr netip.Addr) bool {
	if len(s.allow) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range s.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
