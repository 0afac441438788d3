package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture reads a capture from testdata, without its "# source:" line.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, []byte("# source:")) {
		_, b, _ = bytes.Cut(b, []byte("\n"))
	}
	return b
}

// registry is IANA and three registries on one 127.0.0.1 TLS server, told apart by host
// name: every connection of the probe goes there, whatever the name, and its certificate
// is for those names. It serves real captures.
type registry struct {
	env  *Env
	now  time.Time
	mu   sync.Mutex
	hits map[string]int // host+path -> requests
}

func newRegistry(t *testing.T) *registry {
	t.Helper()
	reg := &registry{hits: map[string]int{}}
	verisign := fixture(t, "rdap/verisign-domain-example.com.json")
	// No capture of a registry that leaves the date out was found: this is Verisign's
	// answer with its expiration event taken out (an edited capture).
	noExpiry := bytes.Replace(verisign, []byte(`
    {
      "eventAction": "expiration",
      "eventDate": "2023-08-13T04:00:00Z"
    },`), nil, 1)
	if bytes.Equal(noExpiry, verisign) {
		t.Fatal("the expiration event was not found in the Verisign capture")
	}
	routes := map[string][]byte{
		"data.iana.org/rdap/dns.json":                 fixture(t, "rdap/iana-dns-bootstrap-2021-05-11-trimmed.json"),
		"rdap.verisign.com/com/v1/domain/example.com": verisign,
		"rdap.nic.cz/domain/example.cz":               fixture(t, "rdap/nic.cz-domain-example.cz.json"),
		"rdap.nic.ar/domain/example.ar":               noExpiry,
	}
	now := time.Now()
	cert, pool := testCert(t, now.Add(-time.Hour), now.Add(365*24*time.Hour),
		"data.iana.org", "rdap.verisign.com", "rdap.nic.cz", "rdap.nic.ar", "rdap.publicinterestregistry.net", "www.example.com", "shop.example.io")
	srv := tlsServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Host + r.URL.Path
		reg.mu.Lock()
		reg.hits[key]++
		reg.mu.Unlock()
		if r.Host == "www.example.com" || r.Host == "shop.example.io" {
			_, _ = io.WriteString(w, "<h1>Welcome</h1>")
			return
		}
		body, ok := routes[key]
		if !ok {
			w.Header().Set("Content-Type", "application/rdap+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(fixture(t, "rdap/nicmx-404.json"))
			return
		}
		w.Header().Set("Content-Type", "application/rdap+json")
		_, _ = w.Write(body)
	}))
	addr := srv.Listener.Addr().String()
	reg.now = time.Date(2023, 7, 30, 4, 0, 0, 0, time.UTC)
	reg.env = &Env{
		Now:     func() time.Time { reg.mu.Lock(); defer reg.mu.Unlock(); return reg.now },
		RootCAs: pool,
		HTTPTransport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			DisableKeepAlives: true,
		},
	}
	return reg
}

func (r *registry) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[key]
}

func (r *registry) advance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(d)
}

func TestDomainProbe(t *testing.T) {
	reg := newRegistry(t)
	// 2023-07-30: Verisign's EXAMPLE.COM expires 2023-08-13T04:00:00Z, in 14 days.
	r := run(t, &Spec{Name: "example", Type: Domain, Target: "www.example.com", Conditions: []string{
		"[DOMAIN_EXPIRATION] > 7d", "[BODY].ldhName == EXAMPLE.COM", `[BODY].status contains "client transfer prohibited"`},
		Degraded: []string{"[DOMAIN_EXPIRATION] > 30d"}}, reg.env)
	wantStatus(t, r, Degraded)
	if r.Reason != "domain registration expires in 14 days" {
		t.Errorf("reason %q", r.Reason)
	}
	if r.Values["domain"] != "example.com" || r.Values["domain_expires"] != "2023-08-13T04:00:00Z" || r.Values["domain_days"] != "14.0" {
		t.Errorf("values %v", r.Values)
	}
	// The default: two weeks' notice. 14 days left is not more than 14 days.
	r = run(t, &Spec{Name: "example", Type: Domain, Target: "example.com"}, reg.env)
	wantStatus(t, r, Down)
	wantFailed(t, r, "[DOMAIN_EXPIRATION] > 14d: was 14d (expires 2023-08-13T04:00:00Z)")

	// rdap.nic.cz writes its dates with an offset: 2019-08-30T12:00:00+00:00.
	reg.advance(-4 * 365 * 24 * time.Hour)
	r = run(t, &Spec{Name: "cz", Type: Domain, Target: "example.cz", Conditions: []string{"[DOMAIN_EXPIRATION] > 14d"}}, reg.env)
	wantStatus(t, r, Up)
	if r.Values["domain_expires"] != "2019-08-30T12:00:00Z" {
		t.Errorf("values %v", r.Values)
	}
}

func TestDomainFailures(t *testing.T) {
	reg := newRegistry(t)
	for _, tc := range []struct {
		target string
		want   string
	}{
		{"example.io", "no RDAP service for .io domains"},         // .io was not in IANA's file in 2021
		{"example.org", "domain not found at its registry"},       // PIR's server: a 404
		{"example.ar", "registry gives no expiry date"},           // no expiration event
		{"shop.example.co.uk", "no RDAP service for .uk domains"}, // registered domain example.co.uk
	} {
		r := run(t, &Spec{Name: "d", Type: Domain, Target: tc.target}, reg.env)
		wantStatus(t, r, Down)
		if r.Reason != tc.want {
			t.Errorf("%s: reason %q; want %q (error %q)", tc.target, r.Reason, tc.want, r.Error)
		}
	}
	reg.advance(17 * 24 * time.Hour) // three days after 2023-08-13
	r := run(t, &Spec{Name: "d", Type: Domain, Target: "example.com"}, reg.env)
	wantStatus(t, r, Down)
	if r.Reason != "domain registration expired 3 days ago" {
		t.Errorf("reason %q", r.Reason)
	}
}

// A registry is asked once per domain every few hours, whatever the interval and however
// many probes read the domain; the bootstrap file once a day.
func TestDomainAnswersAreKept(t *testing.T) {
	reg := newRegistry(t)
	const q = "rdap.verisign.com/com/v1/domain/example.com"
	const boot = "data.iana.org/rdap/dns.json"
	spec := &Spec{Name: "d", Type: Domain, Target: "example.com"}
	web := &Spec{Name: "w", Type: HTTP, Target: "https://www.example.com/", Conditions: []string{"[DOMAIN_EXPIRATION] > 7d"}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := web.Validate(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(2)
		go func() { defer wg.Done(); Run(context.Background(), spec, reg.env) }()
		go func() { defer wg.Done(); Run(context.Background(), web, reg.env) }()
	}
	wg.Wait()
	if n, b := reg.count(q), reg.count(boot); n != 1 || b != 1 {
		t.Errorf("20 concurrent runs: %d RDAP queries, %d bootstrap fetches; want 1 and 1", n, b)
	}
	r := Run(context.Background(), spec, reg.env)
	if r.Values["rdap_cached"] != "true" {
		t.Errorf("values %v", r.Values)
	}
	reg.advance(rdapTTL + time.Minute)
	Run(context.Background(), spec, reg.env)
	if n, b := reg.count(q), reg.count(boot); n != 2 || b != 1 {
		t.Errorf("after %s: %d RDAP queries, %d bootstrap fetches; want 2 and 1", rdapTTL, n, b)
	}
	reg.advance(rdapBootstrapTTL)
	Run(context.Background(), spec, reg.env)
	if n, b := reg.count(q), reg.count(boot); n != 3 || b != 2 {
		t.Errorf("a day later: %d RDAP queries, %d bootstrap fetches; want 3 and 2", n, b)
	}
	// A definite "no" is kept too: the registry is not asked every minute about a 404.
	for range 3 {
		Run(context.Background(), &Spec{Name: "o", Type: Domain, Target: "example.org"}, reg.env)
	}
	if n := reg.count("rdap.publicinterestregistry.net/rdap/org/domain/example.org"); n != 1 {
		t.Errorf("404 asked %d times; want 1", n)
	}
}

// Gatus's [DOMAIN_EXPIRATION] on an http endpoint: the page is judged as ever, and the
// URL's registered domain is asked for apart.
func TestHTTPDomainExpiration(t *testing.T) {
	reg := newRegistry(t)
	r := run(t, &Spec{Name: "site", Type: HTTP, Target: "https://www.example.com/", Conditions: []string{
		"[STATUS] == 200", "[DOMAIN_EXPIRATION] > 7d"}}, reg.env)
	wantStatus(t, r, Up)
	if r.Values["domain_expires"] != "2023-08-13T04:00:00Z" {
		t.Errorf("values %v", r.Values)
	}
	r = run(t, &Spec{Name: "site", Type: HTTP, Target: "https://shop.example.io/", Conditions: []string{
		"[STATUS] == 200", "[DOMAIN_EXPIRATION] > 7d"}}, reg.env)
	wantStatus(t, r, Down)
	if r.Reason != "no RDAP service for .io domains" || r.Error != "" {
		t.Errorf("reason %q, error %q", r.Reason, r.Error)
	}
	// Without the placeholder no registry is asked.
	before := reg.count("data.iana.org/rdap/dns.json")
	run(t, &Spec{Name: "p", Type: HTTP, Target: "https://www.example.com/"}, newRegistryEnvLike(reg))
	if reg.count("data.iana.org/rdap/dns.json") != before {
		t.Error("an http probe without [DOMAIN_EXPIRATION] asked RDAP")
	}
}

// newRegistryEnvLike is a fresh Env (empty cache) on the same servers.
func newRegistryEnvLike(reg *registry) *Env {
	return &Env{Now: reg.env.Now, RootCAs: reg.env.RootCAs, HTTPTransport: reg.env.HTTPTransport}
}

func TestDomainValidation(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "x", Type: Domain, Target: "10.0.0.1"}, "is an address"},
		{Spec{Name: "x", Type: Domain, Target: "localhost"}, "not under a registered domain"},
		{Spec{Name: "x", Type: Domain, Target: "https://example.com/"}, "not a domain name"},
		{Spec{Name: "x", Type: HTTP, Target: "http://127.0.0.1:8080/", Conditions: []string{"[DOMAIN_EXPIRATION] > 7d"}}, "needs a registered domain name in the target"},
		{Spec{Name: "x", Type: TCP, Target: "localhost:443", Conditions: []string{"[DOMAIN_EXPIRATION] > 7d"}}, "needs a registered domain name in the target"},
		{Spec{Name: "x", Type: DNS, Target: "example.com", Conditions: []string{"[DOMAIN_EXPIRATION] > 7d"}}, "not measured by dns probes"},
		{Spec{Name: "x", Type: Domain, Target: "example.com", Conditions: []string{"[DOMAIN_EXPIRATION] > 30"}}, "needs a unit"},
		{Spec{Name: "x", Type: Domain, Target: "example.com", Conditions: []string{"[RESPONSE_TIME] < 1s"}}, "not measured by domain probes"},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s %v: got %v; want %q", tc.spec.Type, tc.spec.Target, tc.spec.Conditions, err, tc.want)
		}
	}
}

func TestTargetDomain(t *testing.T) {
	for _, tc := range []struct {
		typ    Type
		target string
		want   string
	}{
		{HTTP, "https://www.shop.example.co.uk:8443/x", "example.co.uk"},
		{SMTP, "mail.example.org:25", "example.org"},
		{TLS, "[2001:db8::1]:636", ""},
		{ICMP, "router.example.net", "example.net"},
		{Domain, "EXAMPLE.COM.", "example.com"},
		{TCP, "db1:5432", ""},
	} {
		got, err := targetDomain(tc.typ, tc.target)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%s %s: %q, %v; want %q", tc.typ, tc.target, got, err, tc.want)
		}
	}
}

// fuzz budget: 20000x
func FuzzRDAP(f *testing.F) {
	for _, name := range []string{"rdap/iana-dns-bootstrap-2021-05-11-trimmed.json", "rdap/verisign-domain-example.com.json",
		"rdap/nic.cz-domain-example.cz.json", "rdap/nicmx-404.json"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if exp, found, err := parseRDAPDomain(b); err == nil && found && exp.IsZero() {
			t.Errorf("%q: found a zero date", b)
		}
		if m, err := parseRDAPBootstrap(b); err == nil {
			for k, urls := range m {
				for _, u := range urls {
					if !strings.HasSuffix(u, "/") {
						t.Errorf("%s: base %q without a final /", k, u)
					}
				}
			}
		}
	})
}
