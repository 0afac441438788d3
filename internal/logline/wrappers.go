package logline

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// What wraps a log line on its way to a reader: terminal colours, a
// pasted viewer's line numbers, the timestamp `kubectl logs --timestamps`
// and `docker logs -t` put in front, a JSON application log's object,
// `journalctl -o short-monotonic`'s uptime. Parse peels these off so that
// a signature sees the same message however the line arrived.

// stripANSI removes terminal escape sequences (colours, cursor moves) and
// rsyslog's escaped form of them ("#033[0;31m").
func stripANSI(b []byte) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 && !bytes.Contains(b, []byte("#033[")) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		var seq int
		switch {
		case b[i] == 0x1b:
			seq = 1
		case b[i] == '#' && bytes.HasPrefix(b[i:], []byte("#033")):
			seq = 4
		default:
			out = append(out, b[i])
			i++
			continue
		}
		j := i + seq
		switch {
		case j < len(b) && b[j] == '[': // CSI: parameters, then a final byte @..~
			j++
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) && j-i < 64 {
				j++
			}
			if j < len(b) {
				j++
			}
		case j < len(b) && b[j] == ']': // OSC: up to BEL or ESC \
			j++
			for j < len(b) && b[j] != 0x07 && b[j] != 0x1b && j-i < 256 {
				j++
			}
			if j < len(b) && b[j] == 0x07 {
				j++
			} else if j+1 < len(b) && b[j] == 0x1b && b[j+1] == '\\' {
				j += 2
			}
		case seq == 1: // a two-byte escape (ESC c, ESC =), or a lone ESC
			j = min(j+1, len(b))
		default:
			// "#033" not followed by a sequence: text, keep it.
			out = append(out, b[i])
			i++
			continue
		}
		i = j
	}
	return out
}

// lineNumber strips a pasted viewer's line number: "  123 | msg" (a web
// viewer or an editor), "   123\tmsg" (cat -n) and "123:msg" (grep -n);
// for the last and for "  123 msg" (less -N), only when what follows is a
// line of a known format, so that a message that starts with a number
// keeps it.
func lineNumber(b []byte, ctx Context, depth int) ([]byte, bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	d := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == d || i-d > 7 || i >= len(b) {
		return b, false
	}
	rest := b[i:]
	switch {
	case bytes.HasPrefix(bytes.TrimLeft(rest, " "), []byte("| ")) || bytes.Equal(bytes.TrimLeft(rest, " "), []byte("|")):
		r := bytes.TrimLeft(rest, " ")[1:]
		return bytes.TrimPrefix(r, []byte(" ")), true
	case rest[0] == '\t':
		return rest[1:], true
	case rest[0] == ':' || rest[0] == ' ':
		r := rest[1:]
		if rest[0] == ' ' {
			r = bytes.TrimLeft(r, " ")
		}
		if len(r) > 0 && r[0] >= '0' && r[0] <= '9' && rest[0] == ':' && i-d <= 2 {
			// "12:34:56": a time, not a line number (an ISO line after
			// grep -n has a 4-digit year: "7:2026-…").
			return b, false
		}
		if e := parse(r, nil, ctx, depth+1); e.Format != Plain {
			return r, true
		}
	}
	return b, false
}

// pipePrefix strips the "name  | " that docker compose logs and docker
// service logs put before each container line ("traefik_1  | msg",
// "web.1.x7k2@node1    | msg").
func pipePrefix(b []byte) ([]byte, bool) {
	i := 0
	for i < len(b) && i <= 128 {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '@') {
			break
		}
		i++
	}
	if i == 0 || i > 128 {
		return b, false
	}
	j := i
	for j < len(b) && b[j] == ' ' {
		j++
	}
	if j == i || j >= len(b) || b[j] != '|' {
		return b, false
	}
	rest := b[j+1:]
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return rest, true
}

// parseStamped reads a line that a container runtime prefixed with its
// RFC 3339 time ("2026-11-25T21:43:20.123456789Z msg": kubectl logs
// --timestamps, docker logs -t, docker service logs -t): the time is the
// runtime's, the rest is the container's line in whatever format it has.
func parseStamped(t time.Time, rest string, ctx Context, depth int) (Entry, bool) {
	if rest == "" {
		return Entry{}, false
	}
	e := parse([]byte(rest), nil, ctx, depth+1)
	if e.Format == Plain {
		e.Format = Stamped
	}
	// The runtime's time is complete (year, zone); a klog or syslog
	// line inside has neither.
	if e.Time.IsZero() || e.Format == Klog || e.Format == Syslog || e.Format == Stamped {
		e.Time = t
	}
	return e, true
}

// looksJournal says whether s, the text after a time, is "host
// tag[pid]: msg" or "host kernel: msg", as journalctl and rsyslog write
// it, rather than a container's own text or a kernel message. strict
// accepts only "kernel:" and "tag[pid]:" tags (after a dmesg-like uptime,
// "usb 1-1: new device" is a kernel message).
func looksJournal(s string, strict bool) bool {
	host, rest, ok := strings.Cut(s, " ")
	if !ok || host == "" {
		return false
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	tag, _, ok := strings.Cut(rest, " ")
	if !ok {
		tag = rest
	}
	if !strings.HasSuffix(tag, ":") || len(tag) < 2 {
		return false
	}
	tag = tag[:len(tag)-1]
	if i := strings.IndexByte(tag, '['); i > 0 && strings.HasSuffix(tag, "]") {
		_, err := strconv.Atoi(tag[i+1 : len(tag)-1])
		return err == nil
	}
	if strict {
		return tag == "kernel"
	}
	return !strings.ContainsAny(tag, "()[]{}\"'=,")
}

// jsonMessageKeys are where JSON application loggers (zap, logrus,
// slog, bunyan, pino, Docker's journald and GELF relays) put the text.
var jsonMessageKeys = []string{"msg", "message", "Message", "MSG"}

var jsonTimeKeys = []string{"time", "ts", "timestamp", "@timestamp", "t", "Time"}

// parseAppJSON reads a JSON application log line: the message, its time,
// and an error field appended as logfmt lines have it.
func parseAppJSON(m map[string]json.RawMessage, ctx Context, depth int) (Entry, bool) {
	str := func(k string) (string, bool) {
		raw, ok := m[k]
		if !ok {
			return "", false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var msg string
	found := false
	for _, k := range jsonMessageKeys {
		if s, ok := str(k); ok {
			msg, found = s, true
			break
		}
	}
	if !found {
		return Entry{}, false
	}
	msg = strings.TrimRight(msg, "\r\n")
	e := Entry{Format: AppJSON, Message: msg}
	// A relay that wraps a whole syslog or klog line in its message.
	if inner := parse([]byte(msg), nil, ctx, depth+1); inner.Format != Plain && inner.Message != "" {
		e = inner
		e.Format = AppJSON
	}
	for _, k := range jsonTimeKeys {
		if s, ok := str(k); ok {
			if t, ok := parseISOTime(s); ok {
				e.Time = t
				break
			}
		}
		if raw, ok := m[k]; ok && e.Time.IsZero() {
			// zap's epoch seconds: "ts":1700000000.123
			if f, err := strconv.ParseFloat(string(raw), 64); err == nil && f > 1e9 && f < 1e10 {
				sec := int64(f)
				e.Time = time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
				break
			}
		}
	}
	for _, k := range []string{"error", "err"} {
		if s, ok := str(k); ok && s != "" {
			e.Message += ": " + s
			break
		}
	}
	for _, k := range []string{"logger", "caller", "component", "source"} {
		if s, ok := str(k); ok && e.Source == "" {
			e.Source = s
			break
		}
	}
	if s, ok := str("host"); ok && e.Host == "" {
		e.Host = s
	} else if s, ok := str("hostname"); ok && e.Host == "" {
		e.Host = s
	}
	return e, true
}

// parseMonotonic reads journalctl -o short-monotonic: "[  123.456789]
// host tag[pid]: msg", the time since boot then the short layout.
func parseMonotonic(rest string, up time.Duration) (Entry, bool) {
	if !looksJournal(rest, true) {
		return Entry{}, false
	}
	e := hostTagMessage(rest)
	e.Uptime, e.HasUptime = up, true
	e.Format = Monotonic
	return e, true
}
