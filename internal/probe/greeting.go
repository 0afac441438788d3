package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// smtp, imap and ssh probes connect, read the server's greeting and check it: a server of
// another protocol, a refusal (SMTP 554, IMAP BYE) or silence is DOWN with a plain reason.
// SMTP and IMAP go on to TLS (implicit or STARTTLS) so that [CERTIFICATE_EXPIRATION] reads
// the mail server's certificate.

// The tls modes of smtp and imap probes.
const (
	tlsAuto     = "auto"
	tlsImplicit = "implicit"
	tlsStartTLS = "starttls"
	tlsNone     = "none"
)

// maxLine bounds one line of a greeting or reply; maxReplyLines one multi-line reply.
const (
	maxLine       = 4096
	maxReplyLines = 100
)

// protoError is a server that answered, but not as it should. plain is the public reason,
// the error text the detail.
type protoError struct {
	plain  string
	detail string
}

func (e *protoError) Error() string { return e.detail }

func protoErr(plain, format string, args ...any) error {
	return &protoError{plain: plain, detail: fmt.Sprintf(format, args...)}
}

// tlsPlan is what a mail probe does about TLS.
type tlsPlan int

const (
	planNone          tlsPlan = iota // plain text only
	planOpportunistic                // STARTTLS when the server offers it
	planStartTLS                     // STARTTLS, or DOWN
	planImplicit                     // TLS from the first byte
)

func (s *Spec) tlsPlan() tlsPlan {
	switch s.TLS {
	case tlsImplicit:
		return planImplicit
	case tlsStartTLS:
		return planStartTLS
	case tlsNone:
		return planNone
	}
	_, port, _ := net.SplitHostPort(s.Target)
	switch {
	case port == "465" && s.Type == SMTP, port == "993" && s.Type == IMAP:
		return planImplicit
	case port == "587" && s.Type == SMTP:
		return planStartTLS
	}
	return planOpportunistic
}

// greetingConn is a connection read line by line under the run's deadline.
type greetingConn struct {
	conn    net.Conn
	br      *bufio.Reader
	timeout time.Duration
	what    string // "SMTP greeting", "IMAP greeting", "SSH banner": what silence lacks
	target  string
	stop    func() bool
}

// dialGreeting connects (with TLS when implicit) and records the address and certificate.
func dialGreeting(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string, implicit bool, what string) (*greetingConn, error) {
	conn, err := env.dialer().DialContext(ctx, "tcp", s.Target)
	if err != nil {
		return nil, err
	}
	o.ip = remoteIP(conn.RemoteAddr())
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A canceled run (the tower stopping) ends a read at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	g := &greetingConn{conn: conn, timeout: s.Timeout, what: what, target: s.Target, stop: stop}
	g.br = bufio.NewReaderSize(conn, maxLine)
	if implicit {
		if err := g.startTLS(ctx, s, env, o, values); err != nil {
			g.close()
			return nil, err
		}
	}
	return g, nil
}

func (g *greetingConn) close() {
	g.stop()
	_ = g.conn.Close()
}

// startTLS runs a TLS handshake on the connection and records the certificate.
func (g *greetingConn) startTLS(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	host, _, _ := net.SplitHostPort(s.Target)
	tc := tls.Client(g.conn, &tls.Config{ServerName: host, RootCAs: env.RootCAs, InsecureSkipVerify: s.InsecureSkipVerify})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS with %s: %w", s.Target, err)
	}
	g.conn = tc
	g.br = bufio.NewReaderSize(tc, maxLine)
	state := tc.ConnectionState()
	values["tls_version"] = tls.VersionName(state.Version)
	recordCert(o, state.PeerCertificates, env.now(), values)
	return nil
}

// readLine reads one line without its line end; a line longer than maxLine is an error.
// silent says that nothing at all has been read yet, for the message.
func (g *greetingConn) readLine(silent bool) (string, error) {
	b, err := g.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", protoErr("not an "+g.proto()+" server", "%s from %s: a line longer than %d bytes", g.what, g.target, maxLine)
	case err != nil && len(b) > 0 && errors.Is(err, io.EOF):
		// A last line without its end: judge it.
	case err != nil:
		if errors.Is(err, os.ErrDeadlineExceeded) && silent {
			return "", protoErr("no "+g.what+" within "+plainDuration(g.timeout), "no %s within %s from %s", g.what, g.timeout, g.target)
		}
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

func (g *greetingConn) proto() string { return strings.Fields(g.what)[0] }

func (g *greetingConn) write(line string) error {
	_, err := io.WriteString(g.conn, line+"\r\n")
	return err
}

// ---- SMTP (RFC 5321, STARTTLS RFC 3207) ----

// smtpReply is one SMTP reply: a code and its lines' texts.
type smtpReply struct {
	code  int
	lines []string // the full lines, as received
	texts []string // each line's text after the code
}

// parseSMTPLine reads "250-text" or "250 text": the code, whether more lines follow, the
// text. ok is false when the line is not an SMTP reply line.
func parseSMTPLine(line string) (code int, more bool, text string, ok bool) {
	if len(line) < 3 {
		return 0, false, "", false
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", false
		}
	}
	if line[0] < '2' || line[0] > '5' {
		return 0, false, "", false
	}
	code, _ = strconv.Atoi(line[:3])
	switch {
	case len(line) == 3:
		return code, false, "", true
	case line[3] == '-':
		return code, true, line[4:], true
	case line[3] == ' ':
		return code, false, line[4:], true
	}
	return 0, false, "", false
}

// parseSMTPReply reads a whole reply from its lines (CRLF or LF). It is the parser the
// live reader uses line by line, for the fuzz test and pasted greetings.
func parseSMTPReply(text string) (smtpReply, error) {
	var r smtpReply
	lines := strings.Split(strings.TrimRight(text, "\r\n"), "\n")
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		done, err := r.add(l)
		if err != nil {
			return r, err
		}
		if done {
			if i != len(lines)-1 {
				return r, fmt.Errorf("text after the last line of the reply: %q", lines[i+1])
			}
			return r, nil
		}
	}
	return r, errors.New("reply ends before its last line")
}

// add takes the reply's next line; done says it was the last.
func (r *smtpReply) add(line string) (done bool, err error) {
	code, more, text, ok := parseSMTPLine(line)
	if !ok {
		return false, fmt.Errorf("not an SMTP reply line: %q", trunc(line))
	}
	if len(r.lines) > 0 && code != r.code {
		return false, fmt.Errorf("reply code changes from %d to %d within one reply", r.code, code)
	}
	if len(r.lines) >= maxReplyLines {
		return false, fmt.Errorf("a reply longer than %d lines", maxReplyLines)
	}
	r.code = code
	r.lines = append(r.lines, line)
	r.texts = append(r.texts, text)
	return !more, nil
}

func (g *greetingConn) readSMTPReply(first bool) (smtpReply, error) {
	var r smtpReply
	for {
		line, err := g.readLine(first && len(r.lines) == 0)
		if err != nil {
			return r, err
		}
		done, err := r.add(line)
		if err != nil {
			return r, protoErr("not an SMTP server", "%s from %s: %v", g.what, g.target, err)
		}
		if done {
			return r, nil
		}
	}
}

// ehlo says hello and returns the extensions offered (upper-case keywords with their
// parameters); a server that refuses EHLO is greeted with HELO and offers none.
func (g *greetingConn) ehlo() ([]string, error) {
	name, err := os.Hostname()
	if err != nil || name == "" || strings.ContainsAny(name, " \r\n") {
		name = "hinomi-probe"
	}
	if err := g.write("EHLO " + name); err != nil {
		return nil, err
	}
	r, err := g.readSMTPReply(false)
	if err != nil {
		return nil, err
	}
	if r.code == 250 {
		var ext []string
		for _, t := range r.texts[1:] {
			ext = append(ext, strings.TrimSpace(t))
		}
		return ext, nil
	}
	if err := g.write("HELO " + name); err != nil {
		return nil, err
	}
	h, err := g.readSMTPReply(false)
	if err != nil {
		return nil, err
	}
	if h.code != 250 {
		return nil, protoErr(fmt.Sprintf("SMTP hello refused: %d", h.code), "EHLO and HELO refused by %s: %q", g.target, h.lines[0])
	}
	return nil, nil
}

func hasExtension(ext []string, name string) bool {
	for _, e := range ext {
		if f := strings.Fields(e); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

func runSMTP(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	plan := s.tlsPlan()
	start := time.Now()
	g, err := dialGreeting(ctx, s, env, o, values, plan == planImplicit, "SMTP greeting")
	if err != nil {
		return err
	}
	defer g.close()
	greet, err := g.readSMTPReply(true)
	if err != nil {
		return err
	}
	o.body, o.hasBody = []byte(strings.Join(greet.lines, "\n")), true
	if greet.code != 220 {
		return protoErr(fmt.Sprintf("SMTP greeting %d", greet.code), "SMTP greeting from %s: %q", s.Target, greet.lines[0])
	}
	g.what = "SMTP reply"
	ext, err := g.ehlo()
	if err != nil {
		return err
	}
	offered := hasExtension(ext, "STARTTLS")
	if plan == planStartTLS && !offered {
		return protoErr("mail server does not offer STARTTLS", "%s does not offer STARTTLS (extensions: %s)", s.Target, strings.Join(ext, ", "))
	}
	if offered && (plan == planStartTLS || plan == planOpportunistic) {
		if err := g.write("STARTTLS"); err != nil {
			return err
		}
		r, err := g.readSMTPReply(false)
		if err != nil {
			return err
		}
		if r.code != 220 {
			return protoErr(fmt.Sprintf("STARTTLS refused: SMTP %d", r.code), "STARTTLS refused by %s: %q", s.Target, r.lines[0])
		}
		if err := g.startTLS(ctx, s, env, o, values); err != nil {
			return err
		}
		// RFC 3207: the client forgets what it knew and says hello again.
		if ext, err = g.ehlo(); err != nil {
			return err
		}
	}
	values["smtp_extensions"] = strings.Join(ext, ", ")
	o.responseTime, o.hasRT = time.Since(start), true
	o.connected = true
	if g.write("QUIT") == nil {
		_, _ = g.readSMTPReply(false)
	}
	return nil
}

// ---- IMAP (RFC 9051 / 3501) ----

// imapGreeting is the server's first line: "* OK [CAPABILITY ...] text".
type imapGreeting struct {
	status string   // OK, PREAUTH or BYE
	caps   []string // from a CAPABILITY response code, if any
	text   string
}

// parseIMAPGreeting reads an IMAP greeting line.
func parseIMAPGreeting(line string) (imapGreeting, error) {
	var g imapGreeting
	line = strings.TrimRight(line, "\r\n")
	rest, ok := strings.CutPrefix(line, "* ")
	if !ok {
		return g, fmt.Errorf("not an IMAP greeting: %q", trunc(line))
	}
	status, rest, _ := strings.Cut(rest, " ")
	g.status = strings.ToUpper(status)
	switch g.status {
	case "OK", "PREAUTH", "BYE":
	default:
		return g, fmt.Errorf("not an IMAP greeting: %q", trunc(line))
	}
	g.text = rest
	if code, ok := strings.CutPrefix(rest, "["); ok {
		if end := strings.IndexByte(code, ']'); end >= 0 {
			f := strings.Fields(code[:end])
			if len(f) > 0 && strings.EqualFold(f[0], "CAPABILITY") {
				g.caps = f[1:]
			}
			g.text = strings.TrimSpace(code[end+1:])
		}
	}
	return g, nil
}

// imapCommand sends a tagged command and reads to its tagged reply; untagged CAPABILITY
// lines are returned.
func (g *greetingConn) imapCommand(tag, cmd string) (status string, caps []string, last string, err error) {
	if err := g.write(tag + " " + cmd); err != nil {
		return "", nil, "", err
	}
	for range maxReplyLines {
		line, err := g.readLine(false)
		if err != nil {
			return "", nil, "", err
		}
		if rest, ok := strings.CutPrefix(line, "* "); ok {
			if f := strings.Fields(rest); len(f) > 0 && strings.EqualFold(f[0], "CAPABILITY") {
				caps = f[1:]
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			st, _, _ := strings.Cut(rest, " ")
			return strings.ToUpper(st), caps, line, nil
		}
	}
	return "", nil, "", protoErr("not an IMAP server", "no reply to %s from %s within %d lines", cmd, g.target, maxReplyLines)
}

func hasCap(caps []string, name string) bool {
	for _, c := range caps {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

func runIMAP(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	plan := s.tlsPlan()
	start := time.Now()
	g, err := dialGreeting(ctx, s, env, o, values, plan == planImplicit, "IMAP greeting")
	if err != nil {
		return err
	}
	defer g.close()
	line, err := g.readLine(true)
	if err != nil {
		return err
	}
	o.body, o.hasBody = []byte(line), true
	greet, err := parseIMAPGreeting(line)
	if err != nil {
		return protoErr("not an IMAP server", "IMAP greeting from %s: %v", s.Target, err)
	}
	if greet.status == "BYE" {
		return protoErr("IMAP server refused the connection", "IMAP greeting from %s: %q", s.Target, line)
	}
	g.what = "IMAP reply"
	caps := greet.caps
	if plan != planNone && plan != planImplicit && greet.status == "OK" {
		if caps == nil {
			st, c, last, err := g.imapCommand("h1", "CAPABILITY")
			if err != nil {
				return err
			}
			if st != "OK" {
				return protoErr("not an IMAP server", "CAPABILITY refused by %s: %q", s.Target, last)
			}
			caps = c
		}
		offered := hasCap(caps, "STARTTLS")
		if plan == planStartTLS && !offered {
			return protoErr("mail server does not offer STARTTLS", "%s does not offer STARTTLS (capabilities: %s)", s.Target, strings.Join(caps, " "))
		}
		if offered {
			st, _, last, err := g.imapCommand("h2", "STARTTLS")
			if err != nil {
				return err
			}
			if st != "OK" {
				return protoErr("STARTTLS refused", "STARTTLS refused by %s: %q", s.Target, last)
			}
			if err := g.startTLS(ctx, s, env, o, values); err != nil {
				return err
			}
		}
	}
	if len(caps) > 0 {
		values["imap_capabilities"] = strings.Join(caps, " ")
	}
	o.responseTime, o.hasRT = time.Since(start), true
	o.connected = true
	_, _, _, _ = g.imapCommand("h3", "LOGOUT")
	return nil
}

// ---- SSH (RFC 4253 section 4.2) ----

// sshIdent is what the probe says of itself: a client must send its own identification.
const sshIdent = "SSH-2.0-hinomi_probe"

// maxSSHLines bounds the lines a server may send before its version (RFC 4253 allows some).
const maxSSHLines = 20

// errSSHv1 is a server that speaks only the first SSH protocol.
var errSSHv1 = errors.New("old SSH protocol")

// parseSSHBanner finds the version line among the first lines a server sent: "SSH-2.0-"
// or "SSH-1.99-" (compatible with 2.0). It returns the line and the software part.
func parseSSHBanner(lines []string) (version, software string, err error) {
	for _, l := range lines {
		l = strings.TrimRight(l, "\r\n")
		rest, ok := strings.CutPrefix(l, "SSH-")
		if !ok {
			continue
		}
		proto, soft, ok := strings.Cut(rest, "-")
		if !ok || soft == "" {
			return l, "", fmt.Errorf("malformed SSH version line %q", trunc(l))
		}
		if proto != "2.0" && proto != "1.99" {
			return l, "", fmt.Errorf("%w: SSH protocol %s, not 2.0: %q", errSSHv1, proto, trunc(l))
		}
		soft, _, _ = strings.Cut(soft, " ")
		return l, soft, nil
	}
	if len(lines) == 0 {
		return "", "", errors.New("no line")
	}
	return "", "", fmt.Errorf("no SSH version line; first line %q", trunc(strings.TrimRight(lines[0], "\r\n")))
}

// otherProtocol recognises a first line that is plainly another protocol's, so the probe
// need not wait for a version line that will never come.
func otherProtocol(line string) bool {
	if _, _, _, ok := parseSMTPLine(line); ok {
		return true
	}
	return strings.HasPrefix(line, "* ") || strings.HasPrefix(line, "HTTP/") || strings.HasPrefix(line, "+OK")
}

func runSSH(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	start := time.Now()
	g, err := dialGreeting(ctx, s, env, o, values, false, "SSH banner")
	if err != nil {
		return err
	}
	defer g.close()
	if err := g.write(sshIdent); err != nil {
		return err
	}
	var lines []string
	for len(lines) < maxSSHLines {
		line, err := g.readLine(len(lines) == 0)
		if err != nil {
			if len(lines) > 0 {
				break
			}
			return err
		}
		lines = append(lines, line)
		if strings.HasPrefix(line, "SSH-") || (len(lines) == 1 && otherProtocol(line)) {
			break
		}
	}
	version, software, err := parseSSHBanner(lines)
	if version != "" {
		o.body, o.hasBody = []byte(version), true
	} else if len(lines) > 0 {
		o.body, o.hasBody = []byte(strings.Join(lines, "\n")), true
	}
	if err != nil {
		plain := "not an SSH server"
		if errors.Is(err, errSSHv1) {
			plain = "SSH server speaks only the old protocol 1"
		}
		return protoErr(plain, "SSH banner from %s: %v", s.Target, err)
	}
	values["ssh_software"] = software
	o.responseTime, o.hasRT = time.Since(start), true
	o.connected = true
	return nil
}
