package probe

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	smtpd "github.com/emersion/go-smtp"
	"golang.org/x/crypto/ssh"

	"github.com/hinomi/hinomi/internal/testload"
)

// smtpBackend is a go-smtp backend that takes no mail: the probes only say hello.
type smtpBackend struct{}

func (smtpBackend) NewSession(*smtpd.Conn) (smtpd.Session, error) { return smtpSession{}, nil }

type smtpSession struct{}

func (smtpSession) Mail(string, *smtpd.MailOptions) error { return smtpd.ErrAuthRequired }
func (smtpSession) Rcpt(string, *smtpd.RcptOptions) error { return smtpd.ErrAuthRequired }
func (smtpSession) Data(io.Reader) error                  { return smtpd.ErrAuthRequired }
func (smtpSession) Reset()                                {}
func (smtpSession) Logout() error                         { return nil }

// smtpServer runs a real SMTP server (github.com/emersion/go-smtp) on 127.0.0.1: mode
// "none" (no TLS offered), "starttls" (offers STARTTLS) or "implicit" (TLS from the start).
func smtpServer(t *testing.T, mode string, cert tls.Certificate) string {
	t.Helper()
	s := smtpd.NewServer(smtpBackend{})
	s.Domain = "mail.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch mode {
	case "starttls":
		s.TLSConfig = conf
	case "implicit":
		l = tls.NewListener(l, conf)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return l.Addr().String()
}

// silentServer accepts connections and never says anything.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String()
}

// sshServer runs golang.org/x/crypto/ssh's server on 127.0.0.1; it sends its version line
// (SSH-2.0-Go) and begins a key exchange with each client.
func sshServer(t *testing.T) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _, _, _ = ssh.NewServerConn(c, cfg) // the probe hangs up after the banner
			}()
		}
	}()
	return l.Addr().String()
}

func TestSMTPProbe(t *testing.T) {
	now := time.Now()
	cert, pool := testCert(t, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	plain := smtpServer(t, "none", cert)
	starttls := smtpServer(t, "starttls", cert)
	implicit := smtpServer(t, "implicit", cert)
	env := &Env{RootCAs: pool}

	t.Run("plain", func(t *testing.T) {
		r := run(t, &Spec{Name: "mx", Type: SMTP, Target: plain, Conditions: []string{
			`[BODY] contains "ESMTP"`, "[CONNECTED] == true", "[RESPONSE_TIME] < 5s"}}, env)
		wantStatus(t, r, Up)
		if !strings.Contains(r.Values["smtp_extensions"], "PIPELINING") || r.Values["tls_version"] != "" {
			t.Errorf("values %v; want EHLO's extensions and no TLS", r.Values)
		}
	})
	t.Run("STARTTLS offered", func(t *testing.T) {
		r := run(t, &Spec{Name: "mx", Type: SMTP, Target: starttls, Conditions: []string{
			`[BODY] == "220 mail.test ESMTP Service Ready"`, "[CERTIFICATE_EXPIRATION] > 20d"}}, env)
		wantStatus(t, r, Up)
		if r.Values["tls_version"] == "" || r.Values["cert_days"] == "" {
			t.Errorf("values %v; want the certificate read after STARTTLS", r.Values)
		}
		if strings.Contains(r.Values["smtp_extensions"], "STARTTLS") {
			t.Errorf("extensions %q: want those said again after STARTTLS (RFC 3207), without it", r.Values["smtp_extensions"])
		}
	})
	t.Run("implicit TLS", func(t *testing.T) {
		r := run(t, &Spec{Name: "mx", Type: SMTP, Target: implicit, TLS: "implicit", Conditions: []string{"[CERTIFICATE_EXPIRATION] > 20d"}}, env)
		wantStatus(t, r, Up)
	})
	t.Run("certificate expiry judged", func(t *testing.T) {
		r := run(t, &Spec{Name: "mx", Type: SMTP, Target: starttls, Conditions: []string{"[CERTIFICATE_EXPIRATION] > 60d"}}, env)
		wantStatus(t, r, Down)
		if r.Reason != "certificate expires in 29 days" {
			t.Errorf("reason %q", r.Reason)
		}
	})
	t.Run("no certificate without TLS", func(t *testing.T) {
		r := run(t, &Spec{Name: "mx", Type: SMTP, Target: plain, Conditions: []string{"[CERTIFICATE_EXPIRATION] > 1d"}}, env)
		wantStatus(t, r, Down)
		if r.Reason != "no certificate" {
			t.Errorf("reason %q", r.Reason)
		}
	})
}

// Every way a mail, IMAP or SSH server fails its greeting, told in plain words, against
// real servers of the wrong kind and real sockets.
func TestGreetingFailures(t *testing.T) {
	now := time.Now()
	cert, pool := testCert(t, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	plainSMTP := smtpServer(t, "none", cert)
	starttls := smtpServer(t, "starttls", cert)
	sshd := sshServer(t)
	silent := silentServer(t)
	refused := closedPort(t)
	// RFC 5321 section 3.1: a server that will not serve this client may greet with 554.
	reject := lineServer(t, "554 5.7.1 No SMTP service here\r\n")
	httpd := lineServer(t, "HTTP/1.1 400 Bad Request\r\n\r\n")
	short := 300 * time.Millisecond

	for _, tc := range []struct {
		name string
		spec Spec
		env  *Env
		want string
	}{
		{"smtp 554", Spec{Type: SMTP, Target: reject}, nil, "SMTP greeting 554"},
		{"smtp on ssh port", Spec{Type: SMTP, Target: sshd}, nil, "not an SMTP server"},
		{"smtp silent", Spec{Type: SMTP, Target: silent, Timeout: short}, nil, "no SMTP greeting within 300 ms"},
		{"smtp refused", Spec{Type: SMTP, Target: refused}, nil, "connection refused"},
		{"smtp starttls required", Spec{Type: SMTP, Target: plainSMTP, TLS: "starttls"}, nil, "mail server does not offer STARTTLS"},
		{"smtp unknown authority", Spec{Type: SMTP, Target: starttls}, nil, "certificate signed by an unknown authority"},
		{"smtp implicit on plain port", Spec{Type: SMTP, Target: plainSMTP, TLS: "implicit", Timeout: short}, &Env{RootCAs: pool}, "the service does not speak TLS"},
		{"ssh on smtp port", Spec{Type: SSH, Target: plainSMTP}, nil, "not an SSH server"},
		{"ssh on http port", Spec{Type: SSH, Target: httpd}, nil, "not an SSH server"},
		{"ssh silent", Spec{Type: SSH, Target: silent, Timeout: short}, nil, "no SSH banner within 300 ms"},
		{"imap on smtp port", Spec{Type: IMAP, Target: plainSMTP}, nil, "not an IMAP server"},
		{"imap silent", Spec{Type: IMAP, Target: silent, Timeout: short}, nil, "no IMAP greeting within 300 ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name = "svc"
			tc.spec.Interval = time.Minute
			start := time.Now()
			r := run(t, &tc.spec, tc.env)
			wantStatus(t, r, Down)
			if r.Reason != tc.want {
				t.Errorf("reason %q; want %q (error %q)", r.Reason, tc.want, r.Error)
			}
			if !strings.Contains(r.Error, tc.spec.Target) {
				t.Errorf("error %q does not name the target %s", r.Error, tc.spec.Target)
			}
			if strings.Contains(r.Reason, tc.spec.Target) {
				t.Errorf("reason %q names the target", r.Reason)
			}
			// A server of another protocol is told at once, not after the timeout.
			if took := time.Since(start); !strings.Contains(tc.want, "within") && took > 5*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
}

func TestSSHProbe(t *testing.T) {
	addr := sshServer(t)
	r := run(t, &Spec{Name: "bastion", Type: SSH, Target: addr, Conditions: []string{
		`[BODY] == "SSH-2.0-Go"`, "[CONNECTED] == true", "[IP] == 127.0.0.1"}}, nil)
	wantStatus(t, r, Up)
	if r.Values["ssh_software"] != "Go" {
		t.Errorf("values %v", r.Values)
	}
	r = run(t, &Spec{Name: "bastion", Type: SSH, Target: addr, Conditions: []string{`[BODY] contains "OpenSSH"`}}, nil)
	wantStatus(t, r, Down)
	if r.Reason != `SSH banner does not contain "OpenSSH"` {
		t.Errorf("reason %q", r.Reason)
	}
}

// dovecot runs Debian's dovecot-imapd as a real IMAP server on two free 127.0.0.1 ports
// (143-style with STARTTLS, 993-style with implicit TLS), with a minimal configuration in
// a temporary directory, and stops it when the test ends.
func dovecot(t *testing.T, cert tls.Certificate) (imap, imaps string) {
	t.Helper()
	bin := testload.RequireProgram(t, "dovecot", "DOVECOT", "apt-get install dovecot-imapd")
	testload.RequireRoot(t, "dovecot starts as root and drops to its own users")
	dir, err := os.MkdirTemp("", "probes-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for name, b := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }()
		_, p, _ := net.SplitHostPort(l.Addr().String())
		return p
	}
	p1, p2 := port(), port()
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/log
instance_name = probes-dovecot-%[2]s
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <%[1]s/cert.pem
ssl_key = <%[1]s/key.pem
passdb {
  driver = static
  args = password=unused
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[1]s/home
}
service imap-login {
  chroot =
  inet_listener imap {
    port = %[2]s
  }
  inet_listener imaps {
    port = %[3]s
  }
}
service anvil {
  chroot =
}
`, dir, p1, p2)
	cfgPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	imap, imaps = net.JoinHostPort("127.0.0.1", p1), net.JoinHostPort("127.0.0.1", p2)
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range []string{imap, imaps} {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "log"))
				t.Fatalf("dovecot does not listen on %s: %v\n%s", a, err, log)
			}
			time.Sleep(50 * time.Millisecond) // polling for the port, under the deadline above
		}
	}
	return imap, imaps
}

func TestIMAPProbeDovecot(t *testing.T) {
	now := time.Now()
	cert, pool := testCert(t, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	imap, imaps := dovecot(t, cert)
	env := &Env{RootCAs: pool}

	r := run(t, &Spec{Name: "mail", Type: IMAP, Target: imap, Conditions: []string{
		`[BODY] contains "Dovecot"`, "[CERTIFICATE_EXPIRATION] > 20d"}}, env)
	wantStatus(t, r, Up)
	if r.Values["tls_version"] == "" || !strings.Contains(r.Values["imap_capabilities"], "STARTTLS") {
		t.Errorf("values %v; want STARTTLS done", r.Values)
	}
	r = run(t, &Spec{Name: "mail", Type: IMAP, Target: imaps, TLS: "implicit", Conditions: []string{"[CERTIFICATE_EXPIRATION] > 20d"}}, env)
	wantStatus(t, r, Up)
	r = run(t, &Spec{Name: "mail", Type: IMAP, Target: imap, TLS: "none", Conditions: []string{`[BODY] contains "Dovecot"`}}, env)
	wantStatus(t, r, Up)
	if r.Values["tls_version"] != "" {
		t.Errorf("tls: none did TLS: %v", r.Values)
	}
	// Without the CA, STARTTLS fails as a web page's TLS would.
	r = run(t, &Spec{Name: "mail", Type: IMAP, Target: imap}, nil)
	wantStatus(t, r, Down)
	if r.Reason != "certificate signed by an unknown authority" {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestTLSPlanByPort(t *testing.T) {
	for _, tc := range []struct {
		typ    Type
		target string
		tls    string
		want   tlsPlan
	}{
		{SMTP, "mx:25", "", planOpportunistic},
		{SMTP, "mx:587", "", planStartTLS},
		{SMTP, "mx:465", "", planImplicit},
		{SMTP, "mx:465", "none", planNone},
		{IMAP, "mx:143", "auto", planOpportunistic},
		{IMAP, "mx:993", "", planImplicit},
		{IMAP, "mx:587", "", planOpportunistic},
		{IMAP, "mx:1143", "starttls", planStartTLS},
	} {
		s := Spec{Name: "x", Type: tc.typ, Target: tc.target, TLS: tc.tls}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := s.tlsPlan(); got != tc.want {
			t.Errorf("%s %s tls=%q: plan %d; want %d", tc.typ, tc.target, tc.tls, got, tc.want)
		}
	}
}

func TestParseGreetings(t *testing.T) {
	// Real greetings: Postfix's default smtpd_banner ($myhostname ESMTP $mail_name), from
	// https://www.postfix.org/postconf.5.html#smtpd_banner, and RFC 5321 section 4.2's
	// multi-line form; Dovecot's from the test above; OpenSSH's from RFC 4253 section 4.2.
	r, err := parseSMTPReply("220-mail.example.org ESMTP Postfix\r\n220 no UCE\r\n")
	if err != nil || r.code != 220 || len(r.lines) != 2 {
		t.Errorf("multi-line greeting: %+v %v", r, err)
	}
	for _, bad := range []string{"", "hello", "220-a\r\n250 b", "220-only continuation", "999 x", "22"} {
		if _, err := parseSMTPReply(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	g, err := parseIMAPGreeting("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n")
	if err != nil || g.status != "OK" || !hasCap(g.caps, "STARTTLS") || g.text != "Dovecot (Debian) ready." {
		t.Errorf("dovecot greeting: %+v %v", g, err)
	}
	if _, err := parseIMAPGreeting("+OK POP3 ready"); err == nil {
		t.Error("a POP3 greeting accepted as IMAP")
	}
	v, soft, err := parseSSHBanner([]string{"Please wait", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"})
	if err != nil || soft != "OpenSSH_9.2p1" || !strings.HasPrefix(v, "SSH-2.0-") {
		t.Errorf("banner: %q %q %v", v, soft, err)
	}
	if _, _, err := parseSSHBanner([]string{"SSH-1.5-OldServer"}); !errors.Is(err, errSSHv1) {
		t.Errorf("protocol 1: %v", err)
	}
}

// fuzz budget: 40000x
func FuzzGreetingParsers(f *testing.F) {
	for _, s := range []string{
		"220 mail.test ESMTP Service Ready\r\n",
		"220-mail.example.org ESMTP Postfix\r\n220 no UCE\r\n",
		"554 5.7.1 No SMTP service here\r\n",
		"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
		"* BYE too many connections\r\n",
		"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
		"SSH-1.99-Cisco-1.25\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := parseSMTPReply(s); err == nil && (r.code < 200 || r.code > 599 || len(r.lines) == 0) {
			t.Errorf("%q: reply %+v", s, r)
		}
		if g, err := parseIMAPGreeting(s); err == nil && g.status != "OK" && g.status != "PREAUTH" && g.status != "BYE" {
			t.Errorf("%q: status %q", s, g.status)
		}
		lines := strings.Split(s, "\n")
		if v, _, err := parseSSHBanner(lines); err == nil && !strings.HasPrefix(v, "SSH-") {
			t.Errorf("%q: version %q", s, v)
		}
		_ = otherProtocol(s)
	})
}

// The tower cancels runs when it stops: a probe waiting for a greeting returns at once.
func TestGreetingCanceled(t *testing.T) {
	silent := silentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Spec{Name: "mx", Type: SMTP, Target: silent, Interval: time.Minute, Timeout: 30 * time.Second}
	done := make(chan Result)
	go func() { done <- Run(ctx, s, nil) }()
	cancel()
	select {
	case r := <-done:
		if r.Status != Down || r.Error != "canceled" {
			t.Errorf("result %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a canceled run still waits for the greeting")
	}
}
