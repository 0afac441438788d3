package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtpd "github.com/emersion/go-smtp"
)

// received is one mail as the test's SMTP server got it.
type received struct {
	From string
	To   []string
	User string // who authenticated, "" for nobody
	TLS  bool
	Data []byte
}

// mailServer is a real SMTP server (emersion/go-smtp) on 127.0.0.1.
type mailServer struct {
	user, pass string
	reject     map[string]*smtpd.SMTPError // by recipient
	got        chan received
}

func (b *mailServer) NewSession(c *smtpd.Conn) (smtpd.Session, error) {
	return &mailSession{b: b, c: c}, nil
}

type mailSession struct {
	b *mailServer
	c *smtpd.Conn
	r received
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.b.user || pass != s.b.pass {
			return &smtpd.SMTPError{Code: 535, EnhancedCode: smtpd.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.r.User = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtpd.MailOptions) error {
	if s.b.user != "" && s.r.User == "" {
		return smtpd.ErrAuthRequired
	}
	s.r.From = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtpd.RcptOptions) error {
	if e := s.b.reject[to]; e != nil {
		return e
	}
	s.r.To = append(s.r.To, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.Data = data
	_, s.r.TLS = s.c.TLSConnectionState()
	s.b.got <- s.r
	return nil
}

func (s *mailSession) Reset()        { s.r = received{User: s.r.User} }
func (s *mailSession) Logout() error { return nil }

// startSMTP serves be on 127.0.0.1 in mode (starttls, tls or none) and
// returns a channel config pointing at it, with a CA file trusting its
// certificate.
func startSMTP(t *testing.T, mode string, be *mailServer) Channel {
	t.Helper()
	certPEM, cert := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	s := smtpd.NewServer(be)
	s.Domain = "mail.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case SMTPStartTLS:
		s.TLSConfig = tlsConf
	case SMTPTLS:
		l = tls.NewListener(l, tlsConf)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})

	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	ch := Channel{Name: "ops-mail", Type: TypeSMTP, Host: host, Port: p, TLS: mode,
		From: "hinomi <hinomi@example.net>", To: []string{"oncall@example.net", "owner@example.net"}}
	if mode != SMTPNone {
		ch.CAFile = caFile
		ch.Username, ch.Password = be.user, be.pass
	}
	return ch
}

// selfSigned makes a certificate for 127.0.0.1.
func selfSigned(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hinomi test mail server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, cert
}

// parseMail reads a received mail: its headers and its decoded body.
func parseMail(t *testing.T, data []byte) (netmail.Header, string) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail: %v\n%s", err, data)
	}
	var r io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header, strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
}

func TestSMTPModes(t *testing.T) {
	for _, mode := range []string{SMTPStartTLS, SMTPTLS, SMTPNone} {
		t.Run(mode, func(t *testing.T) {
			be := &mailServer{got: make(chan received, 4)}
			if mode != SMTPNone {
				be.user, be.pass = "hinomi", "pa55word"
			}
			ch := startSMTP(t, mode, be)

			firing := pve1(Firing, at("03:00:12"), at("03:01:42"), time.Time{})
			if err := sendOnce(t, ch, firing); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := <-be.got
			if got.From != "hinomi@example.net" || !slices.Equal(got.To, ch.To) {
				t.Errorf("envelope from %q to %v", got.From, got.To)
			}
			if got.TLS != (mode != SMTPNone) || got.User != be.user {
				t.Errorf("TLS %v, user %q; want TLS %v, user %q", got.TLS, got.User, mode != SMTPNone, be.user)
			}
			h, body := parseMail(t, got.Data)
			subject, wantBody := Text(firing)
			if s, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); err != nil || s != subject {
				t.Errorf("Subject = %q (%v); want %q", s, err, subject)
			}
			if body != wantBody {
				t.Errorf("body:\n%s\nwant:\n%s", body, wantBody)
			}
			if d, err := h.Date(); err != nil || !d.Equal(firing.Now) {
				t.Errorf("Date = %v (%v); want %v", d, err, firing.Now)
			}
			id := h.Get("Message-Id")
			if !strings.HasPrefix(id, "<hinomi.") || !strings.HasSuffix(id, "@example.net>") {
				t.Errorf("Message-ID = %q", id)
			}
			for k, want := range map[string]string{
				"From":           `"hinomi" <hinomi@example.net>`,
				"To":             "<oncall@example.net>, <owner@example.net>",
				"Auto-Submitted": "auto-generated",
				"X-Hinomi-State": "firing",
				"X-Hinomi-Key":   "heartbeat/pve1",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q; want %q", k, got, want)
				}
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
				t.Errorf("Content-Type = %q", h.Get("Content-Type"))
			}

			// The repeat and the resolution thread under the firing mail.
			for _, m := range []Message{
				pve1(Repeat, at("03:00:12"), at("08:12:52"), time.Time{}),
				pve1(Resolved, at("03:00:12"), at("08:12:52"), at("08:12:40")),
			} {
				if err := sendOnce(t, ch, m); err != nil {
					t.Fatalf("Send %s: %v", m.State, err)
				}
				h, _ := parseMail(t, (<-be.got).Data)
				if h.Get("In-Reply-To") != id || h.Get("References") != id {
					t.Errorf("%s: In-Reply-To %q, References %q; want %q", m.State, h.Get("In-Reply-To"), h.Get("References"), id)
				}
				if h.Get("Message-Id") == id {
					t.Errorf("%s reuses the firing mail's Message-ID", m.State)
				}
			}
		})
	}
}

func TestSMTPErrors(t *testing.T) {
	be := &mailServer{user: "hinomi", pass: "pa55word", got: make(chan received, 4), reject: map[string]*smtpd.SMTPError{
		"gone@example.net":  {Code: 550, EnhancedCode: smtpd.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"later@example.net": {Code: 451, EnhancedCode: smtpd.EnhancedCode{4, 3, 0}, Message: "try again later"},
	}}
	ch := startSMTP(t, SMTPStartTLS, be)
	m := pve1(Firing, at("03:00:12"), at("03:01:42"), time.Time{})
	tests := []struct {
		name      string
		edit      func(*Channel)
		status    int
		retryable bool
	}{
		{"unknown recipient", func(c *Channel) { c.To = []string{"gone@example.net"} }, 550, false},
		{"greylisted", func(c *Channel) { c.To = []string{"later@example.net"} }, 451, true},
		{"wrong password", func(c *Channel) { c.Password = "nope" }, 535, false},
		{"untrusted certificate", func(c *Channel) { c.CAFile = "" }, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ch
			tt.edit(&c)
			err := sendOnce(t, c, m)
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T); want *SendError", err, err)
			}
			if se.Status != tt.status || Retryable(err) != tt.retryable {
				t.Errorf("status %d retryable %v; want %d %v: %v", se.Status, Retryable(err), tt.status, tt.retryable, err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), `smtp channel "ops-mail"`) {
				t.Errorf("error does not name the channel: %v", err)
			}
			if strings.Contains(err.Error(), c.Password) && c.Password != "" {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// TestSMTPHonoursDeadline: a server that accepts and never greets must
// not hold a Send past its deadline.
func TestSMTPHonoursDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range conns {
			c.Close()
		}
	})
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	s, err := New(Channel{Name: "slow-mail", Type: TypeSMTP, Host: host, Port: p, TLS: SMTPNone,
		From: "hinomi@example.net", To: []string{"oncall@example.net"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx, pve1(Firing, at("03:00:12"), at("03:01:42"), time.Time{}))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Send took %v past a 100ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !Retryable(err) {
		t.Errorf("err = %v; want a retryable deadline error", err)
	}
}
