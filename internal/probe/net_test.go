package probe

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"
)

// closedPort returns a 127.0.0.1 address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestTCPOpenAndClosed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	r := run(t, &Spec{Name: "open", Type: TCP, Target: l.Addr().String()}, nil)
	wantStatus(t, r, Up)
	if r.Values["ip"] != "127.0.0.1" || r.Values["response_time"] == "" {
		t.Errorf("values %v; want ip and response_time", r.Values)
	}

	closed := closedPort(t)
	r = run(t, &Spec{Name: "closed", Type: TCP, Target: closed}, nil)
	wantStatus(t, r, Down)
	wantFailed(t, r, "[CONNECTED] == true: was false")
	if !strings.Contains(r.Error, "connection refused") {
		t.Errorf("error %q; want connection refused", r.Error)
	}
	// A port that must stay closed: the conditions read [CONNECTED], so they decide.
	r = run(t, &Spec{Name: "must-be-closed", Type: TCP, Target: closed, Conditions: []string{"[CONNECTED] == false"}}, nil)
	wantStatus(t, r, Up)
}

// dnsServer answers for a tiny zone on 127.0.0.1 over UDP.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	zone := map[uint16]map[string]string{
		dns.TypeA:    {"web.hinomi.test.": "web.hinomi.test. 300 IN A 192.0.2.10"},
		dns.TypeAAAA: {"web.hinomi.test.": "web.hinomi.test. 300 IN AAAA 2001:db8::10"},
		dns.TypeMX:   {"hinomi.test.": "hinomi.test. 300 IN MX 10 mail.hinomi.test."},
		dns.TypeTXT:  {"hinomi.test.": `hinomi.test. 300 IN TXT "v=spf1 -all"`},
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		if rr, ok := zone[q.Qtype][strings.ToLower(q.Name)]; ok {
			a, err := dns.NewRR(rr)
			if err != nil {
				t.Error(err)
			}
			m.Answer = append(m.Answer, a)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	resolver := dnsServer(t)
	r := run(t, &Spec{Name: "a", Type: DNS, Target: "web.hinomi.test", Resolver: resolver, Conditions: []string{
		"[DNS_RCODE] == NOERROR", "[IP] == 192.0.2.10", `[BODY] contains "192.0.2.10"`, "[RESPONSE_TIME] < 5s",
	}}, nil)
	wantStatus(t, r, Up)
	if r.Values["answers"] != "192.0.2.10" || r.Values["rcode"] != "NOERROR" || r.Values["ttl"] != "5m0s" {
		t.Errorf("values %v", r.Values)
	}

	r = run(t, &Spec{Name: "aaaa", Type: DNS, Target: "web.hinomi.test.", RecordType: "aaaa", Resolver: resolver,
		Conditions: []string{"[IP] == 2001:db8::10"}}, nil)
	wantStatus(t, r, Up)

	r = run(t, &Spec{Name: "mx", Type: DNS, Target: "hinomi.test", RecordType: "MX",
		Conditions: []string{`[BODY] contains "10 mail.hinomi.test."`}}, &Env{Resolver: resolver})
	wantStatus(t, r, Up)

	r = run(t, &Spec{Name: "nx", Type: DNS, Target: "nope.hinomi.test", Resolver: resolver}, nil)
	wantStatus(t, r, Down)
	wantFailed(t, r, "[DNS_RCODE] == NOERROR: was NXDOMAIN")

	r = run(t, &Spec{Name: "nx-expected", Type: DNS, Target: "nope.hinomi.test", Resolver: resolver,
		Conditions: []string{"[DNS_RCODE] == NXDOMAIN"}}, nil)
	wantStatus(t, r, Up)

	r = run(t, &Spec{Name: "silent", Type: DNS, Target: "web.hinomi.test", Resolver: closedPort(t), Timeout: 300e6}, nil)
	wantStatus(t, r, Down)
	if r.Error == "" {
		t.Error("no error from a resolver that does not answer")
	}
}

func TestDNSResolverChoice(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("# test\nnameserver 127.0.0.53\nnameserver 127.0.0.54\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  *Env
		spec string
		want string
	}{
		{&Env{ResolvConf: conf}, "", "127.0.0.53:53"},
		{&Env{ResolvConf: conf}, "127.0.0.2:5353", "127.0.0.2:5353"},
		{&Env{ResolvConf: conf, Resolver: "127.0.0.3:53"}, "127.0.0.2:5353", "127.0.0.3:53"},
	} {
		got, err := tc.env.resolver(&Spec{Resolver: tc.spec})
		if err != nil || got != tc.want {
			t.Errorf("resolver = %q, %v; want %q", got, err, tc.want)
		}
	}
	if _, err := (&Env{ResolvConf: filepath.Join(t.TempDir(), "none")}).resolver(&Spec{}); err == nil {
		t.Error("missing resolv.conf accepted")
	}
}

func TestICMPLoopback(t *testing.T) {
	var modes []string
	var reasons []string
	for _, mode := range []string{ICMPUnprivileged, ICMPRaw} {
		c, _, err := listenICMP(mode, false)
		if err != nil {
			if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPROTONOSUPPORT) {
				t.Fatalf("%s: %v", mode, err)
			}
			reasons = append(reasons, err.Error())
			continue
		}
		_ = c.Close()
		modes = append(modes, mode)
	}
	if len(modes) == 0 {
		t.Skipf("neither unprivileged nor raw ICMP is allowed here: %s", strings.Join(reasons, "; "))
	}
	r := run(t, &Spec{Name: "lo", Type: ICMP, Target: "127.0.0.1", Timeout: 3e9,
		Conditions: []string{"[CONNECTED] == true", "[RESPONSE_TIME] < 1s"}}, nil)
	wantStatus(t, r, Up)
	if r.Values["icmp_mode"] != modes[0] || r.Values["ip"] != "127.0.0.1" {
		t.Errorf("values %v; want icmp_mode %s (the first allowed)", r.Values, modes[0])
	}
	for _, mode := range modes {
		r := run(t, &Spec{Name: "lo-" + mode, Type: ICMP, Target: "127.0.0.1", Timeout: 3e9}, &Env{ICMP: mode})
		wantStatus(t, r, Up)
		if r.Values["icmp_mode"] != mode {
			t.Errorf("icmp_mode %q; want %q", r.Values["icmp_mode"], mode)
		}
	}
	if len(modes) < 2 {
		t.Logf("only %s ICMP could be tested here: %s", modes[0], strings.Join(reasons, "; "))
	}
}
