package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Env is what probes need from their surroundings. The zero value works; one Env may be
// shared by any number of concurrent runs. Do not copy an Env after first use.
type Env struct {
	// Now is the clock: Result.Started, certificate lifetimes and the scheduler's plan read
	// it. Default time.Now.
	Now func() time.Time
	// HTTPTransport, when set, carries every HTTP probe (a proxy, a test double). The default
	// opens a new connection for each run, so [RESPONSE_TIME] includes connecting and the TLS
	// handshake as a first-time visitor sees them, and honours RootCAs and each spec's
	// InsecureSkipVerify.
	HTTPTransport http.RoundTripper
	// RootCAs verifies certificates for http and tls probes; nil means the system pool.
	RootCAs *x509.CertPool
	// Resolver (host:port), when set, answers every dns probe instead of its own resolver.
	Resolver string
	// ResolvConf is read for the default DNS resolver; default /etc/resolv.conf.
	ResolvConf string
	// ICMP forces "unprivileged" or "raw" echo sockets; empty tries unprivileged, then raw.
	ICMP string
	// RDAPBootstrap is the URL of IANA's RDAP bootstrap file for domains; default
	// https://data.iana.org/rdap/dns.json. Domain expiry queries (and the bootstrap file)
	// go through HTTPTransport when it is set.
	RDAPBootstrap string

	rdap   rdapCache
	docker dockerClient

	once       sync.Once
	transports [4]*http.Transport // [0] verifying, [1] InsecureSkipVerify; [2], [3] the same with keep-alive
	// flushMu guards flushed: when the keep-alive transports' idle
	// connections were last closed.
	flushMu sync.Mutex
	flushed time.Time
}

// keepAliveFor is how long a kept-alive connection may stay idle, and how
// often idle ones are closed whatever their age.
const keepAliveFor = time.Minute

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// dialer connects http, tcp and tls probes; their names are looked up through Resolver when
// it is set.
func (e *Env) dialer() *net.Dialer {
	return &net.Dialer{Resolver: e.netResolver()}
}

func (e *Env) netResolver() *net.Resolver {
	if e.Resolver == "" {
		return net.DefaultResolver
	}
	server := e.Resolver
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

func (e *Env) transport(insecure, keepAlive bool) http.RoundTripper {
	if e.HTTPTransport != nil {
		return e.HTTPTransport
	}
	e.once.Do(func() {
		for i := range e.transports {
			t := &http.Transport{
				DialContext:            e.dialer().DialContext,
				TLSClientConfig:        &tls.Config{RootCAs: e.RootCAs, InsecureSkipVerify: i%2 == 1},
				DisableKeepAlives:      true,
				ForceAttemptHTTP2:      true,
				MaxResponseHeaderBytes: 64 << 10,
			}
			if i >= 2 {
				t.DisableKeepAlives = false
				t.MaxIdleConns, t.MaxIdleConnsPerHost, t.IdleConnTimeout = 512, 32, keepAliveFor
			}
			e.transports[i] = t
		}
		e.flushed = time.Now()
	})
	i := 0
	if insecure {
		i = 1
	}
	if keepAlive {
		i += 2
		e.flushIdle()
	}
	return e.transports[i]
}

// flushIdle closes the keep-alive transports' idle connections once every
// keepAliveFor: a connection in use every few seconds is never idle long
// enough to time out, and would keep a moved address or a renewed
// certificate from being seen.
func (e *Env) flushIdle() {
	e.flushMu.Lock()
	due := time.Since(e.flushed) >= keepAliveFor
	if due {
		e.flushed = time.Now()
	}
	e.flushMu.Unlock()
	if due {
		e.transports[2].CloseIdleConnections()
		e.transports[3].CloseIdleConnections()
	}
}

// Run executes one probe within its timeout and judges the answer. It never panics on a
// bad spec: an invalid one is reported as DOWN with the validation error.
func Run(ctx context.Context, s *Spec, env *Env) Result {
	if env == nil {
		env = &Env{}
	}
	r := Result{Started: env.now(), Values: map[string]string{}}
	t0 := time.Now()
	rs, err := s.ready()
	if err != nil {
		r.Status, r.Error, r.Reason = Down, "invalid probe: "+err.Error(), "invalid probe configuration"
		return r
	}
	runCtx, cancel := context.WithTimeout(ctx, rs.Timeout)
	defer cancel()
	o := &observation{}
	switch rs.Type {
	case HTTP:
		err = runHTTP(runCtx, rs, env, o, r.Values)
	case TCP:
		err = runTCP(runCtx, rs, env, o, r.Values)
	case TLS:
		err = runTLS(runCtx, rs, env, o, r.Values)
	case DNS:
		err = runDNS(runCtx, rs, env, o, r.Values)
	case ICMP:
		err = runICMP(runCtx, rs, env, o, r.Values)
	case SMTP:
		err = runSMTP(runCtx, rs, env, o, r.Values)
	case IMAP:
		err = runIMAP(runCtx, rs, env, o, r.Values)
	case SSH:
		err = runSSH(runCtx, rs, env, o, r.Values)
	case Domain:
		err = runDomain(runCtx, rs, env, o, r.Values)
	case Docker:
		err = runDocker(runCtx, rs, env, o, r.Values)
	}
	if rs.Type != Domain && rs.compiled.domain && runCtx.Err() == nil {
		// The target's domain registration is asked for apart (and cached), and a failure
		// there fails only the [DOMAIN_EXPIRATION] conditions, with its reason.
		lookupDomain(runCtx, rs, env, o, r.Values)
	}
	r.Duration = time.Since(t0)
	if err != nil {
		r.Error = describe(ctx, runCtx, err, rs.Timeout)
		r.Reason = errorReason(ctx, runCtx, err, rs.Timeout, env.now())
		o.missing = r.Error
	}
	if o.hasRT {
		r.Values["response_time"] = formatDuration(o.responseTime)
	}
	if o.ip != "" {
		r.Values["ip"] = o.ip
	}
	if o.hasDomain {
		r.Values["domain_expires"] = o.domainExpires.UTC().Format(time.RFC3339)
		r.Values["domain_days"] = strconv.FormatFloat(o.domainLeft.Hours()/24, 'f', 1, 64)
	}
	if o.hasCert {
		r.Values["cert_not_after"] = o.certNotAfter.UTC().Format(time.RFC3339)
		r.Values["cert_days"] = strconv.FormatFloat(o.certLeft.Hours()/24, 'f', 1, 64)
	}
	var reason string
	r.Status, r.Failed, reason = judge(rs.compiled, o, r.Error, rs.Type)
	if r.Status == Up {
		r.Reason = ""
	} else if r.Reason == "" {
		r.Reason = reason
	}
	return r
}

// describe turns a run error into the sentence shown to people: a timeout says so plainly
// instead of Go's "context deadline exceeded".
func describe(parent, run context.Context, err error, timeout time.Duration) string {
	var pe *protoError
	switch {
	case parent.Err() != nil:
		return "canceled"
	case errors.As(err, &pe):
		return pe.detail
	case errors.Is(run.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s", timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("timed out after %s: %v", timeout, err)
	}
	return err.Error()
}

// certLeft records a peer certificate's lifetime.
func recordCert(o *observation, certs []*x509.Certificate, now time.Time, values map[string]string) {
	if len(certs) == 0 {
		return
	}
	leaf := certs[0]
	o.hasCert = true
	o.certNotAfter = leaf.NotAfter
	o.certLeft = leaf.NotAfter.Sub(now)
	values["cert_subject"] = leaf.Subject.String()
}

func remoteIP(a net.Addr) string {
	switch x := a.(type) {
	case *net.TCPAddr:
		return x.IP.String()
	case *net.UDPAddr:
		return x.IP.String()
	case *net.IPAddr:
		return x.IP.String()
	}
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
