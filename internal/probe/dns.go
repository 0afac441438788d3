package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

const defaultResolvConf = "/etc/resolv.conf"

// resolver picks the server: the Env override, the spec's, then resolv.conf's first.
func (e *Env) resolver(s *Spec) (string, error) {
	switch {
	case e.Resolver != "":
		return e.Resolver, nil
	case s.Resolver != "":
		return s.Resolver, nil
	}
	path := e.ResolvConf
	if path == "" {
		path = defaultResolvConf
	}
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("no resolver given and %s unreadable: %w", path, err)
	}
	if len(cfg.Servers) == 0 {
		return "", fmt.Errorf("no resolver given and none in %s", path)
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}

func runDNS(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	server, err := env.resolver(s)
	if err != nil {
		return err
	}
	values["resolver"] = server
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(s.Target), recordTypes[s.RecordType])
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp"}
	in, rtt, err := c.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, rtt, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("query %s %s at %s: %w", s.RecordType, s.Target, server, err)
	}
	if in == nil {
		return errors.New("no reply")
	}
	o.connected = true
	o.responseTime, o.hasRT = rtt, true
	o.rcode = dns.RcodeToString[in.Rcode]
	values["rcode"] = o.rcode
	var answers []string
	for _, rr := range in.Answer {
		var v string
		switch x := rr.(type) {
		case *dns.A:
			v = x.A.String()
		case *dns.AAAA:
			v = x.AAAA.String()
		case *dns.CNAME:
			v = x.Target
		case *dns.MX:
			v = fmt.Sprintf("%d %s", x.Preference, x.Mx)
		case *dns.TXT:
			v = strings.Join(x.Txt, "")
		case *dns.NS:
			v = x.Ns
		default:
			continue
		}
		if o.ip == "" && (rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA) {
			o.ip = v
		}
		answers = append(answers, v)
	}
	// [BODY] of a dns probe is the answers, one per line.
	o.body, o.hasBody = []byte(strings.Join(answers, "\n")), true
	values["answers"] = strings.Join(answers, ", ")
	if len(in.Answer) > 0 {
		values["ttl"] = (time.Duration(in.Answer[0].Header().Ttl) * time.Second).String()
	}
	return nil
}
