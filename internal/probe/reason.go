package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A Result's Reason is its failure told for the public status page: what went wrong, never
// where. Go's errors name the address and port dialled, the URL and the resolver
// ("dial tcp 10.0.0.5:5432: connect: connection refused"), and failed conditions quote the
// measured values; that detail stays in Error and Failed for the console, the API and
// notifications. A reason is built only from the kind of failure, the status code, the
// probe's own condition literals and certificate dates.

// errTooManyRedirects is returned when an HTTP probe stops following redirects.
var errTooManyRedirects = errors.New("too many redirects")

// errNoEcho is returned when an ICMP probe got no reply.
var errNoEcho = errors.New("no echo reply")

// errorReason classifies the error that kept a run from getting an answer.
func errorReason(parent, run context.Context, err error, timeout time.Duration, now time.Time) string {
	var pe *protoError
	switch {
	case parent.Err() != nil:
		return "check canceled"
	case errors.As(err, &pe):
		return pe.plain
	case errors.Is(run.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out after " + plainDuration(timeout)
	}
	var (
		invalid  x509.CertificateInvalidError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		dnsErr   *net.DNSError
		alert    tls.AlertError
		record   tls.RecordHeaderError
		ne       net.Error
	)
	switch {
	case errors.As(err, &invalid):
		c := invalid.Cert
		switch {
		case invalid.Reason == x509.Expired && c != nil && now.After(c.NotAfter):
			return "certificate expired " + plainAge(now.Sub(c.NotAfter)) + " ago"
		case invalid.Reason == x509.Expired && c != nil && now.Before(c.NotBefore):
			return "certificate not valid until " + plainAge(c.NotBefore.Sub(now)) + " from now"
		case invalid.Reason == x509.Expired:
			return "certificate expired"
		}
		return "certificate not accepted"
	case errors.As(err, &unknown):
		return "certificate signed by an unknown authority"
	case errors.As(err, &hostname):
		return "certificate is for another name"
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "DNS name not found"
		case dnsErr.IsTimeout:
			return "DNS lookup timed out"
		}
		return "DNS lookup failed"
	case errors.Is(err, errNoAddress):
		return "DNS name has no address"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, errTooManyRedirects):
		return "too many redirects"
	case errors.Is(err, errNoEcho):
		return "no reply to ping"
	case errors.Is(err, errICMPSocket):
		return "ping not possible from this tower"
	case errors.As(err, &record):
		return "the service does not speak TLS"
	case errors.As(err, &alert):
		return "TLS handshake refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without an answer"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out after " + plainDuration(timeout)
	}
	// net/http's own errors carry no type.
	switch msg := err.Error(); {
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the service does not speak TLS"
	case strings.Contains(msg, "malformed HTTP"),
		// A server that speaks first (an SSH or SMTP banner) can land
		// before the request is written: net/http then drops the
		// connection as an unsolicited response, with this text.
		strings.Contains(msg, "readLoopPeekFailLocked"):
		return "malformed HTTP response"
	}
	return "no answer"
}

// errNoAddress is returned when a name resolves to no address at all.
var errNoAddress = errors.New("has no address")

// errICMPSocket wraps a failure to open an echo socket on the tower itself.
var errICMPSocket = errors.New("cannot open an ICMP socket")

// conditionReason says in plain words why a condition failed.
func conditionReason(c *condition, o *observation, t Type) string {
	v, why := resolve(c.subject, o)
	switch c.subject.name {
	case phStatus:
		if why != "" {
			return "no HTTP response"
		}
		return "HTTP " + strconv.Itoa(o.status)
	case phBody:
		what := "body"
		switch t {
		case DNS:
			what = "DNS answer"
		case SMTP, IMAP:
			what = "greeting"
		case SSH:
			what = "SSH banner"
		case Docker:
			what = "container"
		case Domain:
			what = "registry answer"
		}
		base := what
		if len(c.subject.path) > 0 {
			what += " field " + strings.TrimPrefix(pathString(c.subject.path), ".")
		}
		if why != "" {
			if len(c.subject.path) > 0 && o.jsonErr != nil {
				return base + " is not JSON"
			}
			if len(c.subject.path) > 0 {
				return what + " is missing"
			}
			return "no " + what
		}
		return what + " " + unmet(c)
	case phResponseTime:
		if why != "" {
			return "no response"
		}
		return "response took " + formatDuration(v.dur) + " (wanted " + opNames[c.op] + " " + c.values[0].text + ")"
	case phCert:
		switch {
		case why != "":
			return "no certificate"
		case v.dur <= 0:
			return "certificate expired " + plainAge(-v.dur) + " ago"
		}
		return "certificate expires in " + plainAge(v.dur)
	case phDomain:
		switch {
		case why != "" && o.domainReason != "":
			return o.domainReason
		case why != "":
			return "no domain expiry date"
		case v.dur <= 0:
			return "domain registration expired " + plainAge(-v.dur) + " ago"
		}
		return "domain registration expires in " + plainAge(v.dur)
	case phConnected:
		switch {
		case o.connected && t == Docker:
			return "container is running"
		case o.connected:
			return "port is open"
		}
		return "could not connect"
	case phIP:
		if why != "" {
			return "no address"
		}
		return "unexpected address"
	case phRcode:
		switch o.rcode {
		case "":
			return "no DNS answer"
		case "NXDOMAIN":
			return "DNS name not found"
		case "SERVFAIL":
			return "DNS server failure"
		case "REFUSED":
			return "DNS query refused"
		}
		return "DNS answer " + o.rcode
	}
	return "check failed"
}

func pathString(path []pathElem) string {
	var b strings.Builder
	for _, e := range path {
		b.WriteString(e.String())
	}
	return b.String()
}

// unmet tells what a failed condition wanted, in words: `does not contain "ok"`.
func unmet(c *condition) string {
	lit := func() string {
		var parts []string
		for _, l := range c.values {
			if l.quoted || !l.isNum {
				parts = append(parts, strconv.Quote(l.text))
			} else {
				parts = append(parts, l.text)
			}
		}
		return strings.Join(parts, ", ")
	}
	switch c.op {
	case opContains:
		if c.negate {
			return "contains " + lit()
		}
		return "does not contain " + lit()
	case opMatches:
		if c.re == nil {
			if c.negate {
				return "matches the pattern " + strconv.Quote(c.glob)
			}
			return "does not match the pattern " + strconv.Quote(c.glob)
		}
		if c.negate {
			return "matches /" + c.re.String() + "/"
		}
		return "does not match /" + c.re.String() + "/"
	case opIn:
		if c.negate {
			return "is one of " + lit()
		}
		return "is not one of " + lit()
	case opEq:
		return "is not " + lit()
	case opNe:
		return "is " + lit()
	}
	return "is not " + opNames[c.op] + " " + lit()
}

// plainDuration writes a configured duration for people: "10 s", "500 ms", "2 min".
func plainDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	case d < time.Minute && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}

// plainAge writes an age in its largest whole unit: "3 days", "5 hours", "1 minute".
func plainAge(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= 24*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		return unit(int64(d/time.Hour), "hour")
	}
	return unit(max(int64(d/time.Minute), 1), "minute")
}
