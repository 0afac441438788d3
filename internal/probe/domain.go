package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"
)

// Domain registration expiry, read over RDAP (RFC 9082 queries, RFC 9083 answers): IANA's
// bootstrap file (RFC 9224) names each TLD's RDAP server, the server answers
// GET {server}domain/{name} with the domain's events, and the "expiration" event is the
// date. Registries are not to be asked every minute: answers are kept per domain for
// hours, the bootstrap file for a day, and concurrent runs for one domain share one query.

// DefaultRDAPBootstrap is IANA's RDAP bootstrap file for domain names.
const DefaultRDAPBootstrap = "https://data.iana.org/rdap/dns.json"

// How long answers are kept.
const (
	rdapTTL          = 6 * time.Hour    // an answer, or a definite "no" (404, no expiry date, no RDAP for the TLD)
	rdapRetry        = 15 * time.Minute // after a failure to get any answer (refused, timed out, HTTP 5xx)
	rdapBootstrapTTL = 24 * time.Hour
	maxRDAPBody      = 4 << 20
)

// registeredDomain is the domain a registrar sells, for a name under it:
// www.shop.example.co.uk -> example.co.uk.
func registeredDomain(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if _, ok := dns.IsDomainName(n); !ok || n == "" || strings.ContainsAny(n, " /:") {
		return "", fmt.Errorf("%q is not a domain name", name)
	}
	if net.ParseIP(n) != nil {
		return "", fmt.Errorf("%q is an address, not a domain name", name)
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(n)
	if err != nil {
		return "", fmt.Errorf("%q is not under a registered domain (e.g. example.org): %v", name, err)
	}
	if ps, icann := publicsuffix.PublicSuffix(n); !icann && !strings.Contains(ps, ".") {
		return "", fmt.Errorf("%q is not under a known top-level domain", name)
	}
	return d, nil
}

// targetDomain is the registered domain of a probe's target host: a URL's, a host:port's
// or a bare host's.
func targetDomain(t Type, target string) (string, error) {
	target = strings.TrimSpace(target)
	switch t {
	case HTTP:
		u, err := url.Parse(target)
		if err != nil || u.Hostname() == "" {
			return "", fmt.Errorf("%q has no host", target)
		}
		return registeredDomain(u.Hostname())
	case Domain, ICMP:
		return registeredDomain(target)
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", target)
	}
	return registeredDomain(host)
}

// rdapAnswer is what the registry said about a domain.
type rdapAnswer struct {
	domain  string
	server  string // the query URL
	expires time.Time
	body    []byte
}

type rdapEntry struct {
	done chan struct{}
	at   time.Time // when it was fetched
	ttl  time.Duration
	ans  rdapAnswer
	err  error
}

// rdapCache is an Env's memory of RDAP answers and of the bootstrap file.
type rdapCache struct {
	mu        sync.Mutex
	entries   map[string]*rdapEntry
	bootstrap *rdapEntry
	services  map[string][]string // TLD (or longer suffix) -> RDAP base URLs
}

// runDomain reads the target's registration expiry.
func runDomain(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	name, err := registeredDomain(s.Target)
	if err != nil {
		return err
	}
	ans, cached, err := env.rdapLookup(ctx, name)
	values["domain"] = name
	if ans.server != "" {
		values["rdap_url"] = ans.server
	}
	values["rdap_cached"] = strconv.FormatBool(cached)
	if err != nil {
		return err
	}
	o.body, o.hasBody = ans.body, true
	o.connected = true
	o.hasDomain, o.domainExpires, o.domainLeft = true, ans.expires, ans.expires.Sub(env.now())
	return nil
}

// lookupDomain adds [DOMAIN_EXPIRATION] to another type's run; a failure is kept for the
// conditions that read it.
func lookupDomain(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) {
	fail := func(err error) {
		o.domainErr = err
		o.domainReason = errorReason(ctx, ctx, err, s.Timeout, env.now())
	}
	name, err := targetDomain(s.Type, s.Target)
	if err != nil {
		fail(err)
		return
	}
	ans, cached, err := env.rdapLookup(ctx, name)
	values["domain"] = name
	values["rdap_cached"] = strconv.FormatBool(cached)
	if err != nil {
		fail(err)
		return
	}
	o.hasDomain, o.domainExpires, o.domainLeft = true, ans.expires, ans.expires.Sub(env.now())
}

// rdapLookup answers from the cache, or asks the registry once for every concurrent run.
func (e *Env) rdapLookup(ctx context.Context, name string) (ans rdapAnswer, cached bool, err error) {
	c := &e.rdap
	for {
		c.mu.Lock()
		if c.entries == nil {
			c.entries = map[string]*rdapEntry{}
		}
		ent := c.entries[name]
		now := e.now()
		if ent != nil {
			select {
			case <-ent.done:
				if now.Sub(ent.at) < ent.ttl {
					c.mu.Unlock()
					return ent.ans, true, ent.err
				}
			default:
				c.mu.Unlock()
				select {
				case <-ent.done:
					continue
				case <-ctx.Done():
					return rdapAnswer{}, false, ctx.Err()
				}
			}
		}
		// Forget what has expired (a domain no probe asks about any more).
		for n, old := range c.entries {
			select {
			case <-old.done:
				if now.Sub(old.at) >= old.ttl {
					delete(c.entries, n)
				}
			default:
			}
		}
		ent = &rdapEntry{done: make(chan struct{})}
		c.entries[name] = ent
		c.mu.Unlock()

		ent.ans, ent.ttl, ent.err = e.rdapQuery(ctx, name)
		ent.at = e.now()
		c.mu.Lock()
		if ctx.Err() != nil && ent.err != nil {
			// This run's own deadline cut the query short: the next run asks again.
			delete(c.entries, name)
		}
		c.mu.Unlock()
		close(ent.done)
		return ent.ans, false, ent.err
	}
}

func (e *Env) rdapClient() *http.Client {
	return &http.Client{Transport: e.transport(false, false)}
}

func (e *Env) rdapGet(ctx context.Context, u string, limit int64) (status int, body []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/rdap+json, application/json")
	req.Header.Set("User-Agent", "hinomi-probe")
	resp, err := e.rdapClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if int64(len(body)) > limit {
		return resp.StatusCode, nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return resp.StatusCode, body, nil
}

// rdapQuery asks the registry; ttl is how long the outcome may be kept.
func (e *Env) rdapQuery(ctx context.Context, name string) (rdapAnswer, time.Duration, error) {
	ans := rdapAnswer{domain: name}
	bases, err := e.rdapServers(ctx, name)
	if err != nil {
		var pe *protoError
		if errors.As(err, &pe) {
			return ans, rdapTTL, err
		}
		return ans, rdapRetry, err
	}
	ans.server = bases[0] + "domain/" + name
	status, body, err := e.rdapGet(ctx, ans.server, maxRDAPBody)
	switch {
	case err != nil:
		return ans, rdapRetry, fmt.Errorf("RDAP query %s: %w", ans.server, err)
	case status == http.StatusNotFound:
		return ans, rdapTTL, protoErr("domain not found at its registry", "RDAP %s: 404 not found: the registry does not know %s", ans.server, name)
	case status != http.StatusOK:
		return ans, rdapRetry, protoErr("registry answered HTTP "+strconv.Itoa(status), "RDAP %s: HTTP %d", ans.server, status)
	}
	exp, found, err := parseRDAPDomain(body)
	switch {
	case err != nil:
		return ans, rdapRetry, protoErr("registry answer is not RDAP", "RDAP %s: %v", ans.server, err)
	case !found:
		return ans, rdapTTL, protoErr("registry gives no expiry date", "RDAP %s: no expiration event for %s", ans.server, name)
	}
	ans.expires, ans.body = exp, body
	return ans, rdapTTL, nil
}

// rdapServers finds the RDAP base URLs (ending in /) for a domain: its longest suffix
// listed in the bootstrap file.
func (e *Env) rdapServers(ctx context.Context, name string) ([]string, error) {
	c := &e.rdap
	c.mu.Lock()
	b := c.bootstrap
	if b != nil {
		select {
		case <-b.done:
			if e.now().Sub(b.at) >= b.ttl {
				b = nil
			}
		default:
		}
	}
	mine := b == nil
	if mine {
		b = &rdapEntry{done: make(chan struct{})}
		c.bootstrap = b
	}
	c.mu.Unlock()
	if mine {
		services, err := e.fetchBootstrap(ctx)
		c.mu.Lock()
		b.at, b.err, b.ttl = e.now(), err, rdapBootstrapTTL
		if err != nil {
			b.ttl = rdapRetry
			if ctx.Err() != nil {
				c.bootstrap = nil
			}
		} else {
			c.services = services
		}
		c.mu.Unlock()
		close(b.done)
	} else {
		select {
		case <-b.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	labels := strings.Split(name, ".")
	for i := 1; i < len(labels); i++ {
		if urls := c.services[strings.Join(labels[i:], ".")]; len(urls) > 0 {
			return urls, nil
		}
	}
	tld := labels[len(labels)-1]
	return nil, protoErr("no RDAP service for ."+tld+" domains", "IANA's RDAP bootstrap file lists no server for .%s (%s)", tld, name)
}

func (e *Env) fetchBootstrap(ctx context.Context) (map[string][]string, error) {
	u := e.RDAPBootstrap
	if u == "" {
		u = DefaultRDAPBootstrap
	}
	status, body, err := e.rdapGet(ctx, u, maxRDAPBody)
	switch {
	case err != nil:
		return nil, fmt.Errorf("RDAP bootstrap %s: %w", u, err)
	case status != http.StatusOK:
		return nil, protoErr("RDAP directory unavailable", "RDAP bootstrap %s: HTTP %d", u, status)
	}
	services, err := parseRDAPBootstrap(body)
	if err != nil {
		return nil, protoErr("RDAP directory unreadable", "RDAP bootstrap %s: %v", u, err)
	}
	return services, nil
}

// parseRDAPBootstrap reads an RFC 9224 bootstrap file: suffix -> base URLs, https first,
// each ending in "/".
func parseRDAPBootstrap(body []byte) (map[string][]string, error) {
	var f struct {
		Services [][][]string `json:"services"`
	}
	if err := json.Unmarshal(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), &f); err != nil {
		return nil, fmt.Errorf("not a bootstrap file: %v", err)
	}
	out := map[string][]string{}
	for _, svc := range f.Services {
		if len(svc) < 2 {
			continue
		}
		var https, other []string
		for _, u := range svc[len(svc)-1] {
			p, err := url.Parse(u)
			if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") {
				continue
			}
			if !strings.HasSuffix(u, "/") {
				u += "/"
			}
			if p.Scheme == "https" {
				https = append(https, u)
			} else {
				other = append(other, u)
			}
		}
		urls := append(https, other...)
		if len(urls) == 0 {
			continue
		}
		for _, suffix := range svc[0] {
			out[strings.ToLower(strings.Trim(suffix, "."))] = urls
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the bootstrap file lists no RDAP server")
	}
	return out, nil
}

// parseRDAPDomain reads an RFC 9083 domain object's expiration event.
func parseRDAPDomain(body []byte) (expires time.Time, found bool, err error) {
	var d struct {
		ObjectClassName string `json:"objectClassName"`
		Events          []struct {
			Action string `json:"eventAction"`
			Date   string `json:"eventDate"`
		} `json:"events"`
		ErrorCode json.RawMessage `json:"errorCode"`
	}
	if err := json.Unmarshal(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), &d); err != nil {
		return time.Time{}, false, fmt.Errorf("not JSON: %v", err)
	}
	switch {
	case len(d.ErrorCode) > 0:
		return time.Time{}, false, fmt.Errorf("an RDAP error answer (errorCode %s)", d.ErrorCode)
	case d.ObjectClassName != "" && !strings.EqualFold(d.ObjectClassName, "domain"):
		return time.Time{}, false, fmt.Errorf("a %q object, not a domain", d.ObjectClassName)
	}
	for _, ev := range d.Events {
		if !strings.EqualFold(strings.TrimSpace(ev.Action), "expiration") {
			continue
		}
		t, err := parseRDAPDate(ev.Date)
		if err != nil {
			return time.Time{}, false, err
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

// parseRDAPDate reads an RFC 3339 date; some registries leave out the zone (read as UTC).
func parseRDAPDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("expiration date %q is not an RFC 3339 date", trunc(s))
}
