package notify

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"
)

// smtpTimeout bounds each step of the SMTP dialogue; ctx's deadline, if
// sooner, ends it by closing the connection.
const smtpTimeout = 30 * time.Second

// smtpSender mails the text through an SMTP server with go-mail. The
// firing mail's Message-ID is derived from the alert's key and start, and
// the repeats and the resolution refer to it (In-Reply-To, References),
// so a mail client shows one outage as one thread.
type smtpSender struct {
	ch      Channel
	port    int
	tlsConf *tls.Config
}

func (ch Channel) validateSMTP() error {
	switch {
	case strings.TrimSpace(ch.Host) == "":
		return errors.New("host is required")
	case strings.ContainsAny(ch.Host, "/ \t") || strings.Contains(ch.Host, ":") && net.ParseIP(ch.Host) == nil:
		return fmt.Errorf("host %q must be a bare name or address, with the port in port", ch.Host)
	case ch.Port < 0 || ch.Port > 65535:
		return fmt.Errorf("port %d is not a TCP port", ch.Port)
	case ch.From == "":
		return errors.New("from is required")
	case len(ch.To) == 0:
		return errors.New("to needs at least one address")
	case (ch.Username == "") != (ch.Password == ""):
		return errors.New("username and password go together: set both or neither")
	}
	if _, err := netmail.ParseAddress(ch.From); err != nil {
		return fmt.Errorf("from %q is not a mail address", ch.From)
	}
	for i, to := range ch.To {
		if _, err := netmail.ParseAddress(to); err != nil {
			return fmt.Errorf("to[%d] %q is not a mail address", i, to)
		}
	}
	switch ch.TLS {
	case "", SMTPStartTLS, SMTPTLS:
	case SMTPNone:
		if ch.Username != "" {
			return errors.New("username/password need tls: starttls or tls (a password is never sent in clear text)")
		}
		if ch.CAFile != "" {
			return errors.New("ca_file is not used with tls: none")
		}
	default:
		return fmt.Errorf("tls must be starttls, tls or none, not %q", ch.TLS)
	}
	return nil
}

func newSMTP(ch Channel) (*smtpSender, error) {
	s := &smtpSender{ch: ch, port: ch.Port}
	if ch.TLS == "" {
		s.ch.TLS = SMTPStartTLS
	}
	if s.port == 0 {
		switch s.ch.TLS {
		case SMTPStartTLS:
			s.port = 587
		case SMTPTLS:
			s.port = 465
		default:
			s.port = 25
		}
	}
	s.tlsConf = &tls.Config{ServerName: ch.Host, MinVersion: tls.VersionTLS12}
	if ch.CAFile != "" {
		pem, err := os.ReadFile(ch.CAFile)
		if err != nil {
			return nil, fmt.Errorf("notify channel %q (smtp): ca_file: %w", ch.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify channel %q (smtp): ca_file %s holds no PEM certificate", ch.Name, ch.CAFile)
		}
		s.tlsConf.RootCAs = pool
	}
	return s, nil
}

func (s *smtpSender) Name() string { return s.ch.Name }

func (s *smtpSender) Send(ctx context.Context, m Message) error {
	msg, err := s.message(m)
	if err != nil {
		return &SendError{Channel: s.ch.Name, Type: TypeSMTP, Err: err}
	}

	// go-mail honours ctx only while dialling; closing the connection
	// when ctx ends makes every later step fail at once too.
	var mu sync.Mutex
	var stops []func() bool
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, stop := range stops {
			stop()
		}
	}()
	dialer := &net.Dialer{}
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if s.ch.TLS == SMTPTLS {
			conn, err = (&tls.Dialer{NetDialer: dialer, Config: s.tlsConf}).DialContext(dctx, network, addr)
		} else {
			conn, err = dialer.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stops = append(stops, context.AfterFunc(ctx, func() { conn.Close() }))
		mu.Unlock()
		return conn, nil
	}

	opts := []mail.Option{
		mail.WithPort(s.port),
		mail.WithTimeout(smtpTimeout),
		mail.WithDialContextFunc(dial),
		mail.WithTLSConfig(s.tlsConf),
	}
	switch s.ch.TLS {
	case SMTPStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case SMTPTLS:
		// The dialer already speaks TLS; go-mail must not try STARTTLS.
		opts = append(opts, mail.WithSSL(), mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if s.ch.Username != "" {
		// PLAIN and LOGIN refuse to run outside TLS (checked on the
		// connection itself), so no mechanism leaks the password.
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1,
				mail.SMTPAuthPlain, mail.SMTPAuthLogin, mail.SMTPAuthCramMD5),
			mail.WithUsername(s.ch.Username), mail.WithPassword(s.ch.Password))
	} else {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthNoAuth))
	}
	client, err := mail.NewClient(s.ch.Host, opts...)
	if err != nil {
		return &SendError{Channel: s.ch.Name, Type: TypeSMTP, Err: err}
	}
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.fail(ctx, fmt.Errorf("connect to %s: %w", net.JoinHostPort(s.ch.Host, strconv.Itoa(s.port)), err))
	}
	if err := client.SendWithSMTPClient(conn, msg); err != nil {
		_ = client.CloseWithSMTPClient(conn)
		return s.fail(ctx, err)
	}
	// The server has accepted the mail; a failing QUIT must not make the
	// outbox send it twice.
	_ = client.CloseWithSMTPClient(conn)
	return nil
}

// fail classifies an SMTP failure: a 4xx reply or a network error is
// temporary, a 5xx reply (bad address, rejected auth) is permanent.
func (s *smtpSender) fail(ctx context.Context, err error) error {
	e := &SendError{Channel: s.ch.Name, Type: TypeSMTP, Temporary: true, Err: err}
	if cerr := ctx.Err(); cerr != nil {
		e.Err = fmt.Errorf("%w: %w", cerr, err)
		return e
	}
	var tp *textproto.Error
	var se *mail.SendError
	switch {
	case errors.As(err, &tp):
		e.Status = tp.Code
	case errors.As(err, &se) && se.ErrorCode() != 0:
		e.Status = se.ErrorCode()
	}
	switch {
	case e.Status >= 500:
		e.Temporary = false
	case e.Status == 0 && permanentTransport(err):
		e.Temporary = false
	case e.Status == 0 && isSMTPConfigError(err):
		e.Temporary = false
	}
	return e
}

// isSMTPConfigError: go-mail's plain errors that retrying cannot fix.
func isSMTPConfigError(err error) bool {
	s := err.Error()
	for _, p := range []string{"does not support STARTTLS", "does not support SMTP AUTH",
		"unencrypted connection", "not supported by server", "no supported auth"} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(p)) {
			return true
		}
	}
	return false
}

// message builds the mail: subject and body from Text, Date = m.Now,
// and the threading headers.
func (s *smtpSender) message(m Message) (*mail.Msg, error) {
	subject, body := Text(m)
	msg := mail.NewMsg()
	if err := msg.From(s.ch.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.To(s.ch.To...); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	msg.Subject(subject)
	now := m.Now
	if now.IsZero() {
		now = time.Now()
	}
	msg.SetDateWithValue(now)
	root, id := messageIDs(m, s.ch.From)
	msg.SetMessageIDWithValue(id)
	if id != root {
		msg.SetGenHeaderPreformatted(mail.HeaderInReplyTo, "<"+root+">")
		msg.SetGenHeaderPreformatted(mail.HeaderReferences, "<"+root+">")
	}
	// RFC 3834: auto-generated, so vacation responders stay quiet.
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(mail.Header("X-Hinomi-State"), m.State.String())
	if k := oneLine(m.Key, maxKey); k != "" {
		msg.SetGenHeader(mail.Header("X-Hinomi-Key"), k)
	}
	msg.SetUserAgent("hinomi")
	msg.SetBodyString(mail.TypeTextPlain, body)
	return msg, nil
}

// messageIDs returns the thread's root id (the firing mail's) and this
// mail's id, without the angle brackets.
func messageIDs(m Message, from string) (root, id string) {
	domain := "hinomi.invalid"
	if a, err := netmail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i < len(a.Address)-1 {
			domain = a.Address[i+1:]
		}
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", m.Key, m.Started.UnixNano()))
	h := hex.EncodeToString(sum[:10])
	root = "hinomi." + h + "@" + domain
	if m.State == Firing {
		return root, root
	}
	return root, fmt.Sprintf("hinomi.%s.%s.%d@%s", h, m.State, m.Now.UnixNano(), domain)
}
