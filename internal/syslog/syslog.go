// Package syslog reads what devices without an agent send the tower: RFC
// 5424 and RFC 3164 (BSD) messages, over UDP (a message a datagram) or a
// stream (TCP or TLS, RFC 6587: octet-counting or newline framing, told
// apart per message). Routers, NAS boxes and busybox send RFC 3164 with
// every liberty; what no parser reads is kept as a raw line with the
// sender's address, never dropped. The messages themselves are parsed by
// github.com/leodido/go-syslog (its auto-detecting machine, best effort);
// the framing is here, so that a frame past the size bound is cut and
// kept (with a marker) while the connection goes on.
package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/auto"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// Message is one received message.
type Message struct {
	// Time is the message's own time, or when it was received when it has
	// none (or one that does not parse).
	Time time.Time
	// Host is the HOSTNAME the sender put in, else its address.
	Host string
	// App, ProcID and MsgID are the message's APP-NAME (BSD: TAG), PROCID
	// and MSGID, "" when absent.
	App, ProcID, MsgID string
	// Facility is 0..23, Severity 0..7; -1 when the message had no PRI.
	Facility, Severity int
	Text               string
	// Format is "rfc5424", "rfc3164" or "raw" (no parser read it).
	Format string
	// Sender is the address it came from.
	Sender netip.Addr
}

// Parser parses messages. It is not safe for concurrent use: each
// listener goroutine has its own.
type Parser struct {
	m   gosyslog.Machine
	loc *time.Location
}

// NewParser returns a parser; BSD timestamps, which have no zone, are
// read in loc (nil: UTC).
func NewParser(loc *time.Location) *Parser {
	if loc == nil {
		loc = time.UTC
	}
	m := auto.NewMachine(
		auto.WithRFC3164Options(rfc3164.WithYear(rfc3164.CurrentYear{}), rfc3164.WithTimezone(loc), rfc3164.WithRFC3339(),
			rfc3164.WithSecondFractions(), rfc3164.WithLenientDay()),
		auto.WithRFC5424Options(rfc5424.WithBestEffort()),
	)
	m.WithBestEffort()
	return &Parser{m: m, loc: loc}
}

// Parse reads one message (one datagram or frame, its line end removed).
// It never fails: what it cannot read is a raw message.
func (p *Parser) Parse(b []byte, sender netip.Addr, now time.Time) Message {
	b = bytes.TrimRight(b, "\r\n\x00")
	msg := Message{Time: now, Facility: -1, Severity: -1, Sender: sender, Format: "raw", Host: sender.Unmap().String()}
	parsed, err := p.safeParse(b)
	var base *gosyslog.Base
	switch m := parsed.(type) {
	case *rfc5424.SyslogMessage:
		if m != nil && (err == nil || m.Version != 0) {
			base, msg.Format = &m.Base, "rfc5424"
		}
	case *rfc3164.SyslogMessage:
		if m != nil && (err == nil || m.Timestamp != nil) {
			base, msg.Format = &m.Base, "rfc3164"
		}
	}
	if base == nil {
		msg.Text = clean(b)
		if pri, rest, ok := leadingPRI(b); ok {
			msg.Facility, msg.Severity, msg.Text = pri/8, pri%8, clean(rest)
		}
		return msg
	}
	if base.Priority != nil {
		msg.Facility, msg.Severity = int(*base.Priority/8), int(*base.Priority%8)
	}
	if base.Timestamp != nil && !base.Timestamp.IsZero() {
		msg.Time = *base.Timestamp
		// A BSD timestamp has no year: "Dec 31" read on January 1st is
		// last year's.
		if msg.Format == "rfc3164" && msg.Time.After(now.Add(48*time.Hour)) {
			msg.Time = msg.Time.AddDate(-1, 0, 0)
		}
	}
	if base.Hostname != nil && *base.Hostname != "" && *base.Hostname != "-" {
		msg.Host = clean([]byte(*base.Hostname))
	}
	msg.App, msg.ProcID, msg.MsgID = str(base.Appname), str(base.ProcID), str(base.MsgID)
	if base.Message != nil {
		msg.Text = clean([]byte(*base.Message))
	}
	if msg.Text == "" {
		// Best effort stopped before the message: keep all of it.
		_, rest, _ := leadingPRI(b)
		msg.Text = clean(rest)
	}
	return msg
}

// safeParse guards against a parser panic on hostile input: a message
// that crashes the parser is kept raw, not the tower brought down.
func (p *Parser) safeParse(b []byte) (m gosyslog.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("syslog parser panic: %v", r)
		}
	}()
	return p.m.Parse(b)
}

func str(s *string) string {
	if s == nil || *s == "-" {
		return ""
	}
	return clean([]byte(*s))
}

// clean makes text valid UTF-8 without NULs.
func clean(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

// leadingPRI reads a "<PRI>" at the start of a message no parser read.
func leadingPRI(b []byte) (int, []byte, bool) {
	if len(b) < 3 || b[0] != '<' {
		return 0, b, false
	}
	end := bytes.IndexByte(b[:min(len(b), 5)], '>')
	if end < 2 {
		return 0, b, false
	}
	n, err := strconv.Atoi(string(b[1:end]))
	if err != nil || n < 0 || n > 191 {
		return 0, b, false
	}
	return n, b[end+1:], true
}

// ErrFraming is a stream that is not syslog framing at all (an octet count
// that does not end in a space).
var ErrFraming = errors.New("syslog: bad octet-counting frame")

// maxCountDigits bounds an octet count's digits.
const maxCountDigits = 9

// Frames reads a stream's messages (RFC 6587): a message that starts with
// a digit is octet-counted ("LEN SP MSG"), any other runs to the next line
// feed. Each goes to fn with how many bytes were cut off it: a message
// longer than max is handed over cut to max, the rest read and dropped.
// It returns fn's error, the stream's, or nil at its end.
func Frames(r io.Reader, max int, fn func(msg []byte, cut int64) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	buf := make([]byte, 0, 4096)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return eof(err)
		}
		switch {
		case c == '\n' || c == '\r' || c == 0:
			continue // blank lines, a NUL trailer (some senders end frames so)
		case c >= '1' && c <= '9':
			n := int64(c - '0')
			digits := 1
			for {
				d, err := br.ReadByte()
				if err != nil {
					return eof(err)
				}
				if d == ' ' {
					break
				}
				if d < '0' || d > '9' || digits >= maxCountDigits {
					// Not a count: a newline-framed message that starts
					// with digits (a bare timestamp).
					buf = append(buf[:0], strconv.FormatInt(n, 10)...)
					buf = append(buf, d)
					if d == '\n' {
						line := buf[:len(buf)-1]
						if err := fn(line[:min(len(line), max)], int64(len(line)-min(len(line), max))); err != nil {
							return err
						}
						buf = buf[:0]
						goto next
					}
					if err := readLine(br, &buf, max, fn); err != nil {
						return err
					}
					goto next
				}
				n = n*10 + int64(d-'0')
				digits++
			}
			take := min(n, int64(max))
			buf = buf[:0]
			if int64(cap(buf)) < take {
				buf = make([]byte, 0, take)
			}
			buf = buf[:take]
			if _, err := io.ReadFull(br, buf); err != nil {
				return eof(err)
			}
			if rest := n - take; rest > 0 {
				if _, err := io.CopyN(io.Discard, br, rest); err != nil {
					return eof(err)
				}
			}
			if err := fn(buf, n-take); err != nil {
				return err
			}
		default:
			buf = append(buf[:0], c)
			if err := readLine(br, &buf, max, fn); err != nil {
				return err
			}
		}
	next:
	}
}

// readLine reads the rest of a newline-framed message into *buf (which
// holds its start) and hands it to fn.
func readLine(br *bufio.Reader, buf *[]byte, max int, fn func([]byte, int64) error) error {
	var cut int64
	if len(*buf) > max {
		cut, *buf = int64(len(*buf)-max), (*buf)[:max]
	}
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 && frag[len(frag)-1] == '\n' {
			frag = frag[:len(frag)-1]
			err = nil
		} else if err == bufio.ErrBufferFull {
			err = errMore
		}
		if room := max - len(*buf); room > 0 {
			take := min(room, len(frag))
			*buf = append(*buf, frag[:take]...)
			cut += int64(len(frag) - take)
		} else {
			cut += int64(len(frag))
		}
		switch {
		case err == errMore:
			continue
		case err != nil:
			// The stream ended inside a message: keep what came.
			if len(*buf) > 0 {
				if ferr := fn(*buf, cut); ferr != nil {
					return ferr
				}
			}
			return eof(err)
		}
		return fn(*buf, cut)
	}
}

var errMore = errors.New("more")

func eof(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}
