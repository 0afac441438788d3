package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	smtpd "github.com/emersion/go-smtp"
)

// mailDesk is a go-smtp backend that greets and takes no mail.
type mailDesk struct{}

func (mailDesk) NewSession(*smtpd.Conn) (smtpd.Session, error) { return mailDesk{}, nil }
func (mailDesk) Mail(string, *smtpd.MailOptions) error         { return errNoMail }
func (mailDesk) Rcpt(string, *smtpd.RcptOptions) error         { return errNoMail }
func (mailDesk) Data(io.Reader) error                          { return errNoMail }
func (mailDesk) Reset()                                        {}
func (mailDesk) Logout() error                                 { return nil }

var errNoMail = errors.New("no mail here")

// TestTowerRunsGreetingAndContainerProbes: the tower runs the smtp, ssh and docker probe
// types through the same configuration and status page as the others, and the page tells
// a port that answers with another protocol's greeting in plain words.
func TestTowerRunsGreetingAndContainerProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	s := smtpd.NewServer(mailDesk{})
	s.Domain = "mail.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	mx := l.Addr().String()

	// An SSH server's first line (RFC 4253 section 4.2); the probe reads only that.
	sshd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sshd.Close() })
	go func() {
		for {
			c, err := sshd.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()

	dir := t.TempDir()
	addr := freePort(t)
	missing := fmt.Sprintf("probes-nothing-%d", os.Getpid())
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
agents:
  - {name: pve1, token: tok-probe-test-aaaaaaaa}
probes:
  - {name: mx, type: smtp, target: %q, interval: 1s, public: true, conditions: ['[BODY] contains "ESMTP"']}
  - {name: bastion, type: ssh, target: %q, interval: 1s, public: true, conditions: ['[BODY] contains "OpenSSH"']}
  - {name: wrongport, type: ssh, target: %q, interval: 1s, public: true}
  - {name: app, type: docker, target: %s, interval: 1s, timeout: 900ms, public: true}
`, addr, filepath.Join(dir, "tower"), mx, sshd.Addr().String(), mx, missing)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	page := waitStatusPage(t, addr, map[string]string{"mx": "up", "bastion": "up", "wrongport": "down", "app": "down"}, 15*time.Second)
	if !strings.Contains(page, "not an SSH server") {
		t.Errorf("the page does not say why wrongport is down:\n%s", page)
	}
	if !strings.Contains(page, "no container named "+missing) && !strings.Contains(page, "Docker does not answer") {
		t.Errorf("the page does not say why app is down:\n%s", page)
	}
	if strings.Contains(page, mx) {
		t.Errorf("the public page names the address %s", mx)
	}
}
