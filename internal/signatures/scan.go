package signatures

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/logline"
)

// chunkSize is how much input is searched at once. Memory stays flat: one
// chunk plus the carried partial line, whatever the input size.
const chunkSize = 1 << 20

// maxTrace bounds the continuation lines kept with an event.
const maxTrace = 24

// Event is one signature matched on one line.
type Event struct {
	Sig    *Signature
	Entry  logline.Entry
	Fields map[string]string
	// Line is the raw line (clipped to logline.MaxLine).
	Line string
	// Trace are the continuation lines that followed (call traces …).
	Trace []string
	Input string
	// LineNo is the 1-based line number in Input.
	LineNo int64
}

// When is the event's time for ordering: the absolute time, else the
// time since boot as an offset from the zero time.
func (e Event) When() time.Time {
	if !e.Entry.Time.IsZero() {
		return e.Entry.Time
	}
	return time.Time{}.Add(e.Entry.Uptime)
}

// Matcher finds a catalogue's signatures in raw log bytes. It searches the
// input for all anchors at once (see prefilter.go) and looks closer
// (normalising the line, running patterns) only where an anchor is.
// A Matcher is safe for concurrent use; Scan keeps its state on the stack.
type Matcher struct {
	cat        *Catalogue
	anchors    *anchorSet
	anchorSigs [][]int
	// Context completes timestamps that leave out the year or zone.
	Context logline.Context
}

// NewMatcher compiles the catalogue's anchors.
func NewMatcher(c *Catalogue) *Matcher {
	m := &Matcher{cat: c}
	idx := map[string]int{}
	var anchors []string
	for si, s := range c.Sigs {
		for _, a := range s.Anchors {
			i, ok := idx[a]
			if !ok {
				i = len(anchors)
				idx[a] = i
				anchors = append(anchors, a)
				m.anchorSigs = append(m.anchorSigs, nil)
			}
			m.anchorSigs[i] = append(m.anchorSigs[i], si)
		}
	}
	m.anchors = newAnchorSet(anchors)
	return m
}

// Stats describe a scan.
type Stats struct {
	Bytes  int64
	Lines  int64
	Events int64
}

// Scan reads r to the end and calls emit for every signature match, in
// input order. input names the source in events ("kern.log", "-").
func (m *Matcher) Scan(r io.Reader, input string, emit func(Event)) (Stats, error) {
	var st Stats
	buf := make([]byte, chunkSize)
	carry := 0
	var lineNo int64 = 1
	for {
		// Whatever a read returns is searched at once, not when a whole
		// chunk is full: lines trickling in from a pipe are matched as
		// they come, so a scan stopped midway has seen them.
		n, err := r.Read(buf[carry:])
		data := buf[:carry+n]
		st.Bytes += int64(n)
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return st, err
		}
		end := bytes.LastIndexByte(data, '\n') + 1
		switch {
		case eof || end == 0 && len(data) == len(buf):
			// The last line without a newline, or a line longer than a
			// whole chunk: search what there is as one line.
			end = len(data)
		case end == 0:
			carry = len(data) // a line still being read
			continue
		}
		lineNo = m.chunk(data[:end], input, lineNo, &st, emit)
		carry = copy(buf, data[end:])
		if eof {
			if end > 0 && data[end-1] != '\n' {
				st.Lines++
			}
			return st, nil
		}
	}
}

// chunk searches whole lines; it returns the line number after the chunk.
func (m *Matcher) chunk(data []byte, input string, lineNo int64, st *Stats, emit func(Event)) int64 {
	counted := 0 // bytes of data whose newlines are in lineNo
	pos := 0
	for pos < len(data) {
		at := m.anchors.next(data, pos)
		if at < 0 {
			break
		}
		ls := bytes.LastIndexByte(data[:at], '\n') + 1
		le := len(data)
		if i := bytes.IndexByte(data[at:], '\n'); i >= 0 {
			le = at + i
		}
		lineNo += int64(bytes.Count(data[counted:ls], []byte{'\n'}))
		counted = ls
		next := m.line(data, ls, le, input, lineNo, st, emit)
		lineNo += int64(bytes.Count(data[counted:min(next, len(data))], []byte{'\n'}))
		counted = min(next, len(data))
		pos = next
	}
	nl := int64(bytes.Count(data[counted:], []byte{'\n'}))
	lineNo += nl
	st.Lines += int64(bytes.Count(data, []byte{'\n'}))
	return lineNo
}

// line examines one line that holds an anchor; it returns where the search
// goes on (after the line, or after its continuation lines).
func (m *Matcher) line(data []byte, ls, le int, input string, lineNo int64, st *Stats, emit func(Event)) int {
	line := data[ls:le]
	seen := map[int]bool{}
	var cands []int
	m.anchors.each(line, func(a int) {
		for _, si := range m.anchorSigs[a] {
			if !seen[si] {
				seen[si] = true
				cands = append(cands, si)
			}
		}
	})
	next := le + 1
	if len(cands) == 0 {
		return next
	}
	entry := logline.Parse(line, data[max(0, ls-4096):ls], m.Context)
	if entry.Message == "" {
		return next
	}
	raw := string(line)
	if len(raw) > logline.MaxLine {
		raw = raw[:logline.MaxLine]
	}
	cands = sortedInts(cands)
	if n := m.match(cands, entry, raw, data, le, input, lineNo, st, emit); n > 0 {
		return n
	}
	if n, ok := m.wrapped(cands, entry, data, ls, le, input, lineNo, st, emit); ok {
		return n
	}
	return next
}

// match runs the candidate signatures on one entry and emits what they
// find; it returns where the search goes on, 0 when nothing matched.
func (m *Matcher) match(cands []int, entry logline.Entry, raw string, data []byte, le int, input string, lineNo int64, st *Stats, emit func(Event)) int {
	next, found := le+1, false
	for _, si := range cands {
		sig := m.cat.Sigs[si]
		var all []map[string]string
		if sig.Repeat {
			all = sig.MatchAll(entry.Message)
		} else if fields, ok := sig.Match(entry.Message); ok {
			all = []map[string]string{fields}
		}
		for i, fields := range all {
			ev := Event{Sig: sig, Entry: entry, Fields: fields, Line: strings.TrimRight(raw, "\r"), Input: input, LineNo: lineNo}
			if sig.Continuation && i == 0 {
				ev.Trace, next = m.continuation(data, le+1)
			}
			st.Events++
			found = true
			emit(ev)
		}
	}
	if !found {
		return 0
	}
	return next
}

// wrapped retries a line that holds an anchor but matched nothing, joined
// with the line before or after it when that line is the other half of a
// record a terminal, an editor or a paste wrapped in two: a line of no
// known format (no time, no host, no tag). The line before is taken only
// when it holds no anchor (it was not matched on its own already).
func (m *Matcher) wrapped(cands []int, entry logline.Entry, data []byte, ls, le int, input string, lineNo int64, st *Stats, emit func(Event)) (int, bool) {
	line := data[ls:le]
	try := func(first, second []byte, firstNo int64, end int) bool {
		for _, sep := range []string{"", " "} {
			joined := make([]byte, 0, len(first)+len(sep)+len(second))
			joined = append(append(append(joined, bytes.TrimRight(first, "\r")...), sep...), second...)
			if len(joined) > logline.MaxLine {
				return false
			}
			e := logline.Parse(joined, nil, m.Context)
			if n := m.match(cands, e, string(joined), data, end, input, firstNo, st, emit); n > 0 {
				return true
			}
		}
		return false
	}
	if entry.Format == logline.Plain && ls > 0 {
		ps := bytes.LastIndexByte(data[:ls-1], '\n') + 1
		prev := data[ps : ls-1]
		if len(prev) > 0 && m.anchors.next(prev, 0) < 0 && try(prev, line, lineNo-1, le) {
			return le + 1, true
		}
	}
	if le < len(data) {
		ne := len(data)
		if i := bytes.IndexByte(data[le+1:], '\n'); i >= 0 {
			ne = le + 1 + i
		}
		nextLine := data[le+1 : ne]
		if len(bytes.TrimSpace(nextLine)) > 0 && logline.Parse(nextLine, nil, m.Context).Format == logline.Plain && try(line, nextLine, lineNo, ne) {
			return ne + 1, true
		}
	}
	return 0, false
}

func sortedInts(xs []int) []int {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
	return xs
}

// traceStarts are how the lines of a kernel report begin after its first
// line; they belong to that report.
var traceStarts = []string{
	"Call Trace:", "<TASK>", "</TASK>", "<IRQ>", "</IRQ>", "Modules linked in:", "CPU:", "Hardware name:",
	"RIP:", "RSP:", "RAX:", "RDX:", "RBP:", "R10:", "R13:", "FS:", "CS:", "CR2:", "Code:", "Workqueue:",
	"task:", "Tainted:", "---[ end trace", "Kernel Offset:", "Stack:", "? ", "Mem-Info:", "Node ",
	"lr :", "pc :", "sp :", "x29:", "Preemption disabled at:", "rcu:", "\t", "(detected by", "Sending NMI",
	"NMI backtrace", "INFO: lockdep", "[<", "irq event stamp:", "hardirqs last", "softirqs last",
	"\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\"",
}

// continuation collects the lines from start that continue a report: their
// message is indented or begins like a trace line. A line that holds an
// anchor starts an event of its own and ends the report.
func (m *Matcher) continuation(data []byte, start int) ([]string, int) {
	var out []string
	pos := start
	for len(out) < 200 && pos < len(data) {
		le := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			le = pos + i
		}
		line := data[pos:le]
		if m.anchors.next(line, 0) >= 0 {
			break
		}
		e := logline.Parse(line, nil, m.Context)
		msg := e.Message
		cont := len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t')
		if !cont {
			for _, p := range traceStarts {
				if strings.HasPrefix(msg, p) {
					cont = true
					break
				}
			}
		}
		if !cont {
			break
		}
		if len(out) < maxTrace {
			out = append(out, strings.TrimRight(string(line), "\r"))
		}
		pos = le + 1
	}
	return out, pos
}

// Line matches one line (a live reader's record) and calls emit for every
// signature it holds. It does not look at following lines, so a live
// event carries no trace.
func (m *Matcher) Line(line []byte, input string, emit func(Event)) {
	if m.anchors.next(line, 0) < 0 {
		return
	}
	var st Stats
	m.line(line, 0, len(line), input, 0, &st, emit)
}
