// Package logline turns one raw log line, in whatever format it arrived
// (kernel ring buffer, dmesg, syslog, journald, RFC 5424, Docker JSON,
// logfmt, klog, OpenWrt logread, pasted wall messages), into a normalised
// entry: when, where, who, and the message itself. Signatures match the
// message, so they do not care how the line was wrapped.
package logline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Format names the layout a line was recognised as.
type Format string

// The formats Parse recognises.
const (
	Plain         Format = "plain"
	Kmsg          Format = "kmsg"
	Dmesg         Format = "dmesg"
	DmesgT        Format = "dmesg-T"
	DmesgISO      Format = "dmesg-iso"
	DmesgX        Format = "dmesg-x" // dmesg -x: "kern  :notice: [ 0.000000] msg"
	Syslog        Format = "syslog"
	ISO           Format = "iso" // journalctl -o short-iso(-precise), rsyslog RFC 3339
	RFC5424       Format = "rfc5424"
	JournalJSON   Format = "journal-json"
	JournalExport Format = "journal-export"
	DockerJSON    Format = "docker-json"
	Logfmt        Format = "logfmt"
	Klog          Format = "klog"
	Logread       Format = "openwrt-logread"
	Wall          Format = "wall"
	// Stamped is a container's plain line behind its runtime's RFC 3339
	// time (kubectl logs --timestamps, docker logs -t); a line of a known
	// format behind that time keeps its own format's name.
	Stamped   Format = "stamped"
	AppJSON   Format = "json"              // an application's JSON log line (msg, message …)
	Monotonic Format = "journal-monotonic" // journalctl -o short-monotonic
)

// Entry is a normalised line.
type Entry struct {
	// Time is the absolute time, zero when the line has none.
	Time time.Time
	// Uptime is the time since boot for kernel lines that carry one
	// ("[  123.456789]"); HasUptime says whether it is set.
	Uptime    time.Duration
	HasUptime bool
	Host      string
	// Source is the program or stream: kernel, corosync, pmxcfs, dockerd.
	Source  string
	PID     int
	Message string
	Format  Format
}

// Context supplies what a line may leave out.
type Context struct {
	// Year completes syslog and klog timestamps (default: this year, or
	// last year when the result would lie in the future).
	Year int
	// Location is the zone of zone-less timestamps (default time.Local).
	Location *time.Location
	// Now is the reference for the year guess (default time.Now()).
	Now time.Time
}

func (c Context) loc() *time.Location {
	if c.Location == nil {
		return time.Local
	}
	return c.Location
}

// complete fills in the year of a timestamp printed without one.
func (c Context) complete(t time.Time) time.Time {
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	y := c.Year
	if y == 0 {
		y = now.Year()
	}
	t = time.Date(y, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), c.loc())
	if c.Year == 0 && t.After(now.Add(48*time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t
}

// MaxLine is the longest line Parse reads; the rest is ignored. A 10 MB
// line must not become a 10 MB message in every finding.
const MaxLine = 64 << 10

// Parse normalises one line. before is the text that precedes the line in
// its input (may be nil): multi-line formats (journal export, wall
// messages) keep the line's time and host there.
//
// Whatever wraps the line is peeled off first: terminal colours, a pasted
// viewer's line numbers, a container runtime's timestamp, a JSON
// application log's object (see wrappers.go).
func Parse(line, before []byte, ctx Context) Entry {
	if len(line) > MaxLine {
		line = line[:MaxLine]
	}
	line = bytes.TrimRight(line, "\r\n")
	e, ok := parseExportField(line, before)
	if !ok {
		e = parse(stripANSI(line), before, ctx, 0)
	}
	// Colours inside a JSON string or a journal field arrive as bytes
	// only once the field is decoded.
	if strings.IndexByte(e.Message, 0x1b) >= 0 {
		e.Message = string(stripANSI([]byte(e.Message)))
	}
	return e
}

// maxDepth bounds how many wrappers are peeled off one line.
const maxDepth = 4

// parse recognises one line; depth counts the wrappers already removed.
func parse(line, before []byte, ctx Context, depth int) Entry {
	line = bytes.TrimRight(line, "\r\n")
	if depth > maxDepth {
		return Entry{Format: Plain, Message: string(bytes.TrimLeft(line, " \t"))}
	}
	trimmed := bytes.TrimLeft(line, " \t")
	if len(trimmed) == 0 {
		return Entry{Format: Plain}
	}
	switch c := trimmed[0]; {
	case c == '{':
		if e, ok := parseJSON(trimmed, ctx, depth); ok {
			return e
		}
	case c == '<':
		if e, ok := parsePri(trimmed, ctx); ok {
			return e
		}
	case c == '[':
		if e, ok := parseDmesg(trimmed, ctx); ok {
			return e
		}
	case c >= '0' && c <= '9':
		if e, ok := parseKmsg(trimmed); ok {
			return e
		}
		if e, ok := parseISO(trimmed, ctx, depth); ok {
			return e
		}
		if rest, ok := lineNumber(line, ctx, depth); ok {
			return parse(rest, before, ctx, depth+1)
		}
	case c == 'I' || c == 'W' || c == 'E' || c == 'F':
		if e, ok := parseKlog(trimmed, ctx); ok {
			return e
		}
	}
	if e, ok := parseDmesgX(trimmed, ctx); ok {
		return e
	}
	if rest, ok := pipePrefix(trimmed); ok {
		return parse(rest, before, ctx, depth+1)
	}
	if e, ok := parseSyslog(trimmed, ctx); ok {
		return e
	}
	if e, ok := parseLogread(trimmed, ctx); ok {
		return e
	}
	if e, ok := parseWallBody(line, before, ctx); ok {
		return e
	}
	if e, ok := parseLogfmt(trimmed); ok {
		return e
	}
	// "tag[pid]: message", as pasted from a log without its time and host.
	if tag, rest, ok := strings.Cut(string(trimmed), ": "); ok && strings.HasSuffix(tag, "]") && !strings.ContainsAny(tag, " ") {
		if i := strings.IndexByte(tag, '['); i > 0 {
			if pid, err := strconv.Atoi(tag[i+1 : len(tag)-1]); err == nil {
				e := Entry{Format: Plain, Source: tag[:i], PID: pid, Message: rest}
				if k, ok := parseKlog([]byte(rest), ctx); ok {
					e.Message = k.Message
				}
				return e
			}
		}
	}
	return Entry{Format: Plain, Message: string(trimmed)}
}

// kernelPrefix strips a "[  123.456789] " uptime (and a printk caller
// "[T123] ") from the start of a message.
func kernelPrefix(msg string) (rest string, up time.Duration, ok bool) {
	s := strings.TrimLeft(msg, " ")
	if !strings.HasPrefix(s, "[") {
		return msg, 0, false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return msg, 0, false
	}
	num := strings.TrimSpace(s[1:end])
	secs, err := strconv.ParseFloat(num, 64)
	if err != nil || secs < 0 || secs > 1e10 {
		return msg, 0, false
	}
	rest = strings.TrimLeft(s[end+1:], " ")
	if strings.HasPrefix(rest, "[") {
		if e := strings.IndexByte(rest, ']'); e > 1 && e < 10 && (rest[1] == 'T' || rest[1] == 'C') {
			if _, err := strconv.Atoi(strings.TrimSpace(rest[2:e])); err == nil {
				rest = strings.TrimLeft(rest[e+1:], " ")
			}
		}
	}
	return rest, time.Duration(secs * float64(time.Second)), true
}

func parseDmesg(b []byte, ctx Context) (Entry, bool) {
	s := string(b)
	if rest, up, ok := kernelPrefix(s); ok {
		if e, ok := parseMonotonic(rest, up); ok {
			return e, true
		}
		return Entry{Uptime: up, HasUptime: true, Source: "kernel", Message: rest, Format: Dmesg}, true
	}
	// dmesg -T: "[Wed Nov 25 21:14:01 2026] msg"
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return Entry{}, false
	}
	t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", s[1:end], ctx.loc())
	if err != nil {
		return Entry{}, false
	}
	return Entry{Time: t, Source: "kernel", Message: strings.TrimLeft(s[end+1:], " "), Format: DmesgT}, true
}

// parseDmesgX reads dmesg -x: a facility and level before the line.
func parseDmesgX(b []byte, ctx Context) (Entry, bool) {
	s := string(b)
	fac, rest, ok := strings.Cut(s, ":")
	if !ok || len(fac) > 8 || strings.TrimRight(fac, " ") == "" || strings.ContainsAny(strings.TrimRight(fac, " "), " \t") {
		return Entry{}, false
	}
	lvl, rest, ok := strings.Cut(rest, ":")
	if !ok || len(lvl) > 8 || strings.ContainsAny(strings.TrimSpace(lvl), " \t") || !strings.HasPrefix(rest, " [") {
		return Entry{}, false
	}
	e, ok := parseDmesg([]byte(strings.TrimLeft(rest, " ")), ctx)
	if !ok {
		return Entry{}, false
	}
	e.Format = DmesgX
	return e, true
}

// parseKmsg reads a /dev/kmsg record: "prio,seq,usec,flags;message".
func parseKmsg(b []byte) (Entry, bool) {
	semi := bytes.IndexByte(b, ';')
	if semi < 0 || semi > 64 {
		return Entry{}, false
	}
	f := strings.Split(string(b[:semi]), ",")
	if len(f) < 3 {
		return Entry{}, false
	}
	for _, x := range f[:3] {
		if _, err := strconv.ParseUint(x, 10, 64); err != nil {
			return Entry{}, false
		}
	}
	usec, _ := strconv.ParseUint(f[2], 10, 64)
	return Entry{Uptime: time.Duration(usec) * time.Microsecond, HasUptime: true, Source: "kernel",
		Message: string(b[semi+1:]), Format: Kmsg}, true
}

var isoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05-0700",
}

func parseISOTime(s string) (time.Time, bool) {
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseISO reads "2026-11-25T21:14:01+0000 host tag[pid]: msg", the
// layout of journalctl -o short-iso and of rsyslog's RFC 3339 template.
//
// Behind a container runtime's time (kubectl logs --timestamps, docker
// logs -t) the rest is the container's own line, not "host tag:".
func parseISO(b []byte, ctx Context, depth int) (Entry, bool) {
	s := string(b)
	ts, rest, ok := strings.Cut(s, " ")
	if !ok || len(ts) < 19 || ts[4] != '-' || ts[10] != 'T' {
		return Entry{}, false
	}
	if strings.Contains(ts, ",") {
		// dmesg --time-format iso: a comma before the fraction, and the
		// message follows the time directly.
		t, ok := parseISOTime(strings.Replace(ts, ",", ".", 1))
		if !ok {
			return Entry{}, false
		}
		return Entry{Time: t, Source: "kernel", Message: rest, Format: DmesgISO}, true
	}
	t, ok := parseISOTime(ts)
	if !ok {
		return Entry{}, false
	}
	if !looksJournal(rest, false) {
		return parseStamped(t, rest, ctx, depth)
	}
	e := hostTagMessage(rest)
	e.Time, e.Format = t, ISO
	return e, true
}

// hostTagMessage splits "host tag[pid]: message" (the part of a syslog or
// journal line after the timestamp), and a kernel uptime inside it.
func hostTagMessage(s string) Entry {
	var e Entry
	host, rest, ok := strings.Cut(s, " ")
	if !ok {
		e.Message = s
		return e
	}
	e.Host = host
	tagEnd := strings.Index(rest, ": ")
	if tagEnd < 0 && strings.HasSuffix(rest, ":") {
		tagEnd = len(rest) - 1
	}
	if tagEnd > 0 && tagEnd < 64 && !strings.ContainsAny(rest[:tagEnd], " ") {
		tag := rest[:tagEnd]
		if i := strings.IndexByte(tag, '['); i > 0 && strings.HasSuffix(tag, "]") {
			e.PID, _ = strconv.Atoi(tag[i+1 : len(tag)-1])
			tag = tag[:i]
		}
		e.Source = tag
		e.Message = strings.TrimPrefix(rest[tagEnd+1:], " ")
	} else {
		e.Message = rest
	}
	// Kubernetes components log klog lines through syslog/journald,
	// dockerd and containerd logrus lines.
	if k, ok := parseKlog([]byte(e.Message), Context{}); ok {
		e.Message = k.Message
	} else if isLogrus(e.Message) {
		if l, ok := parseLogfmt([]byte(e.Message)); ok {
			e.Message = l.Message
		}
	}
	if e.Source == "kernel" || e.Source == "" {
		if m, up, ok := kernelPrefix(e.Message); ok {
			e.Message, e.Uptime, e.HasUptime = m, up, true
			e.Source = "kernel"
		}
	}
	return e
}

// parseSyslog reads "Nov 25 21:14:01 host tag[pid]: msg" (RFC 3164 as
// written to files).
func parseSyslog(b []byte, ctx Context) (Entry, bool) {
	if len(b) < 16 || b[3] != ' ' || b[6] != ' ' || b[9] != ':' || b[12] != ':' {
		return Entry{}, false
	}
	t, err := time.Parse("Jan _2 15:04:05", string(b[:15]))
	if err != nil {
		return Entry{}, false
	}
	rest := string(b[15:])
	// Fractional seconds from some daemons: "Nov 25 21:14:01.123 host".
	if strings.HasPrefix(rest, ".") {
		if i := strings.IndexByte(rest, ' '); i > 0 {
			if frac, err := strconv.ParseFloat("0"+rest[:i], 64); err == nil {
				t = t.Add(time.Duration(frac * float64(time.Second)))
			}
			rest = rest[i:]
		}
	}
	e := hostTagMessage(strings.TrimLeft(rest, " "))
	e.Time, e.Format = ctx.complete(t), Syslog
	return e, true
}

// parseLogread reads OpenWrt's "Wed Nov 25 21:14:01 2026 kern.err kernel:
// [ 12.34] msg".
func parseLogread(b []byte, ctx Context) (Entry, bool) {
	if len(b) < 26 || b[3] != ' ' {
		return Entry{}, false
	}
	t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", string(b[:24]), ctx.loc())
	if err != nil {
		return Entry{}, false
	}
	rest := strings.TrimLeft(string(b[24:]), " ")
	if fac, after, ok := strings.Cut(rest, " "); ok && strings.Contains(fac, ".") {
		rest = after
	}
	e := hostTagMessage("- " + rest)
	e.Host = ""
	e.Time, e.Format = t, Logread
	return e, true
}

var klogLevels = map[byte]bool{'I': true, 'W': true, 'E': true, 'F': true}

// parseKlog reads "E0812 16:26:52.166955   12345 file.go:123] msg".
func parseKlog(b []byte, ctx Context) (Entry, bool) {
	if len(b) < 22 || !klogLevels[b[0]] || b[5] != ' ' {
		return Entry{}, false
	}
	clock := strings.Fields(string(b[6:]))
	if len(clock) == 0 {
		return Entry{}, false
	}
	t, err := time.Parse("0102 15:04:05.999999", string(b[1:5])+" "+clock[0])
	if err != nil {
		return Entry{}, false
	}
	s := string(b)
	end := strings.Index(s, "] ")
	if end < 0 {
		return Entry{}, false
	}
	f := strings.Fields(s[:end])
	e := Entry{Time: ctx.complete(t), Message: s[end+2:], Format: Klog}
	if len(f) >= 3 {
		e.PID, _ = strconv.Atoi(f[2])
	}
	return e, true
}

// parsePri reads lines that start with a syslog priority: RFC 5424
// ("<34>1 2026-…Z host app procid msgid [sd] msg") or RFC 3164 with its
// priority ("<13>Nov 25 21:14:01 host tag: msg").
func parsePri(b []byte, ctx Context) (Entry, bool) {
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return Entry{}, false
	}
	if _, err := strconv.Atoi(string(b[1:end])); err != nil {
		return Entry{}, false
	}
	rest := b[end+1:]
	if bytes.HasPrefix(rest, []byte("1 ")) {
		f := strings.SplitN(string(rest[2:]), " ", 6)
		if len(f) < 6 {
			return Entry{}, false
		}
		e := Entry{Format: RFC5424}
		if t, ok := parseISOTime(f[0]); ok {
			e.Time = t
		}
		if f[1] != "-" {
			e.Host = f[1]
		}
		if f[2] != "-" {
			e.Source = f[2]
		}
		e.PID, _ = strconv.Atoi(f[3])
		msg := f[5]
		// Structured data: "-" or one or more "[id k="v" …]" elements.
		if strings.HasPrefix(msg, "-") {
			msg = strings.TrimPrefix(msg[1:], " ")
		} else if strings.HasPrefix(msg, "[") {
			msg = skipSD(msg)
		}
		e.Message = strings.TrimPrefix(msg, "\ufeff")
		return e, true
	}
	e, ok := parseSyslog(rest, ctx)
	return e, ok
}

// skipSD skips RFC 5424 structured-data elements, honouring escaped "]".
func skipSD(s string) string {
	for strings.HasPrefix(s, "[") {
		i, inQuote := 1, false
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				inQuote = !inQuote
			case ']':
				if !inQuote {
					goto done
				}
			}
		}
		return ""
	done:
		s = s[i+1:]
	}
	return strings.TrimPrefix(s, " ")
}

// parseJSON reads journalctl -o json and Docker json-file lines.
func parseJSON(b []byte, ctx Context, depth int) (Entry, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return Entry{}, false
	}
	str := func(k string) string {
		var s string
		if raw, ok := m[k]; ok {
			_ = json.Unmarshal(raw, &s)
		}
		return s
	}
	if raw, ok := m["log"]; ok {
		var inner string
		if json.Unmarshal(raw, &inner) != nil {
			return Entry{}, false
		}
		inner = strings.TrimRight(inner, "\r\n")
		e := parse(stripANSI([]byte(inner)), nil, ctx, depth+1)
		if e.Format == Plain || e.Time.IsZero() {
			if t, ok := parseISOTime(str("time")); ok && e.Time.IsZero() {
				e.Time = t
			}
		}
		if e.Source == "" {
			e.Source = str("stream")
		}
		e.Format = DockerJSON
		return e, true
	}
	if _, ok := m["MESSAGE"]; ok {
		e := Entry{Format: JournalJSON, Host: str("_HOSTNAME")}
		e.Message = journalMessage(m["MESSAGE"])
		if us, err := strconv.ParseInt(str("__REALTIME_TIMESTAMP"), 10, 64); err == nil {
			e.Time = time.UnixMicro(us).UTC()
		}
		e.Source = str("SYSLOG_IDENTIFIER")
		if e.Source == "" {
			e.Source = str("_COMM")
		}
		if e.Source == "" && str("_TRANSPORT") == "kernel" {
			e.Source = "kernel"
		}
		e.PID, _ = strconv.Atoi(str("_PID"))
		return e, true
	}
	return parseAppJSON(m, ctx, depth)
}

// journalMessage decodes MESSAGE, which journald writes as an array of
// bytes when it is not valid UTF-8.
func journalMessage(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var bs []byte
	var ints []int
	if json.Unmarshal(raw, &ints) == nil {
		for _, i := range ints {
			bs = append(bs, byte(i))
		}
		return string(bs)
	}
	return string(raw)
}

// parseExportField reads the MESSAGE of a journalctl -o export entry: a
// "MESSAGE=…" line, or the binary form (a "MESSAGE" line, then a 64-bit
// little-endian length and the bytes) used when the text holds a newline
// or a control byte. The entry's other fields precede it, back to the
// last empty line.
func parseExportField(b, before []byte) (Entry, bool) {
	msg, ok := bytes.CutPrefix(b, []byte("MESSAGE="))
	if !ok {
		prev := bytes.TrimSuffix(before, []byte("\n"))
		i := bytes.LastIndexByte(prev, '\n')
		if string(prev[i+1:]) != "MESSAGE" || len(b) < 8 {
			return Entry{}, false
		}
		n := binary.LittleEndian.Uint64(b[:8])
		msg = b[8:]
		if uint64(len(msg)) > n {
			msg = msg[:n]
		}
		before = prev[:i+1]
	}
	e := Entry{Format: JournalExport, Message: string(msg)}
	start := bytes.LastIndex(before, []byte("\n\n"))
	block := before
	if start >= 0 {
		block = before[start+2:]
	}
	for _, l := range bytes.Split(block, []byte("\n")) {
		k, v, ok := bytes.Cut(l, []byte("="))
		if !ok {
			continue
		}
		switch string(k) {
		case "__REALTIME_TIMESTAMP":
			if us, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				e.Time = time.UnixMicro(us).UTC()
			}
		case "_HOSTNAME":
			e.Host = string(v)
		case "SYSLOG_IDENTIFIER":
			e.Source = string(v)
		case "_PID":
			e.PID, _ = strconv.Atoi(string(v))
		case "_TRANSPORT":
			if string(v) == "kernel" && e.Source == "" {
				e.Source = "kernel"
			}
		}
	}
	return e, true
}

// parseWallBody reads the line after a "Message from syslogd@HOST at TIME
// ..." wall header: " kernel:[ 123.4] msg".
func parseWallBody(line, before []byte, ctx Context) (Entry, bool) {
	prev := bytes.TrimRight(before, "\r\n")
	if i := bytes.LastIndexByte(prev, '\n'); i >= 0 {
		prev = prev[i+1:]
	}
	// The terminal bell and carriage returns of a raw wall message.
	prev = bytes.Trim(prev, " \t\r\a")
	rest, ok := bytes.CutPrefix(prev, []byte("Message from syslogd@"))
	if !ok {
		return Entry{}, false
	}
	host, when, _ := strings.Cut(string(rest), " at ")
	body := strings.Trim(string(line), " \t\r")
	var e Entry
	// The body is "tag:message", the tag glued to the text
	// ("kernel:unregister_netdevice: waiting …"): the tag ends at the
	// first colon.
	if tag, msg, ok := strings.Cut(body, ":"); ok && tag != "" && !strings.ContainsAny(tag, " \t") {
		e = Entry{Host: host, Source: tag, Message: strings.TrimPrefix(msg, " ")}
		if i := strings.IndexByte(tag, '['); i > 0 && strings.HasSuffix(tag, "]") {
			e.PID, _ = strconv.Atoi(tag[i+1 : len(tag)-1])
			e.Source = tag[:i]
		}
		if m, up, ok := kernelPrefix(e.Message); ok {
			e.Message, e.Uptime, e.HasUptime = m, up, true
		}
	} else {
		e = hostTagMessage(host + " " + body)
	}
	e.Format = Wall
	if len(when) >= 15 {
		if t, err := time.Parse("Jan _2 15:04:05", when[:15]); err == nil {
			e.Time = ctx.complete(t)
		}
	}
	return e, true
}

// parseLogfmt reads key=value lines (dockerd, containerd, Go services)
// that carry at least msg=.
func parseLogfmt(b []byte) (Entry, bool) {
	if !bytes.Contains(b, []byte("msg=")) || !bytes.Contains(b, []byte("=")) {
		return Entry{}, false
	}
	kv := ParseLogfmt(string(b))
	msg, ok := kv["msg"]
	if !ok {
		return Entry{}, false
	}
	e := Entry{Format: Logfmt, Message: msg}
	for _, k := range []string{"time", "ts", "t"} {
		if t, ok := parseISOTime(kv[k]); ok {
			e.Time = t
			break
		}
	}
	if errText := kv["error"]; errText != "" {
		e.Message += ": " + errText
	}
	return e, true
}

// isLogrus says whether a message is a logfmt record as logrus writes it
// ("time=… level=… msg=…"), not a message that merely holds "msg=" (an
// audit record's msg='unit=…').
func isLogrus(s string) bool {
	return (strings.HasPrefix(s, "time=") || strings.HasPrefix(s, "level=") || strings.HasPrefix(s, "ts=")) && strings.Contains(s, "msg=")
}

// ParseLogfmt splits logfmt text into its keys and values; quoted values
// are unquoted, bare words become keys with empty values.
func ParseLogfmt(s string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		ks := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' {
			i++
		}
		key := s[ks:i]
		if i >= len(s) || s[i] == ' ' {
			if key != "" {
				out[key] = ""
			}
			continue
		}
		i++ // '='
		var val string
		if i < len(s) && s[i] == '"' {
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			end := min(j+1, len(s))
			if v, err := strconv.Unquote(s[i:end]); err == nil {
				val = v
			} else {
				val = strings.Trim(s[i:end], `"`)
			}
			i = end
		} else {
			vs := i
			for i < len(s) && s[i] != ' ' {
				i++
			}
			val = s[vs:i]
		}
		if key != "" && utf8.ValidString(key) {
			out[key] = val
		}
	}
	return out
}
