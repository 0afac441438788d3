package swarm

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The text parsers read what people paste: the header may be missing, the
// columns shifted or their padding collapsed to one space, lines wrapped,
// prompts and the command line mixed in, CRLF and ANSI colours left in.
// So a row is read by what its fields look like (an ID, a state word, a
// quoted error), not by column positions.

// ErrNoRows says the text holds no row of the expected command.
var ErrNoRows = errors.New("no row of this command's output found")

// Parsed says how a text was read.
type Parsed struct {
	// Rows is how many rows were read; Skipped lists lines that looked
	// like rows but could not be read.
	Rows    int
	Skipped []string
	// Truncated says the output was printed without --no-trunc.
	Truncated bool
	// Command is the command line found in the text, if any.
	Command string
}

// Notes are Parsed's plain sentences about the reading.
func (p Parsed) Notes() []string {
	var out []string
	if len(p.Skipped) > 0 {
		ex := p.Skipped[0]
		if len(ex) > 120 {
			ex = ex[:120] + "…"
		}
		out = append(out, fmt.Sprintf("%d %s could not be read and %s skipped, e.g. %q.", len(p.Skipped), plural(len(p.Skipped), "line", "lines"), plural(len(p.Skipped), "was", "were"), ex))
	}
	return out
}

var (
	reANSI = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)
	// A shell prompt before a command: "$ ", "~# ", "root@pve1:~# ",
	// "[root@localhost ~]# ".
	rePrompt = regexp.MustCompile(`^(?:\[[^\]]*\]|\S*)?[$#>%]\s+`)
)

// cleanLines splits text into lines without CR, ANSI colours or trailing
// blanks.
func cleanLines(text string) []string {
	text = reANSI.ReplaceAllString(text, "")
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return lines
}

// commandIn returns the docker command line in l ("docker service ps
// --no-trunc web"), with any prompt before it removed.
func commandIn(l, cmd string) (string, bool) {
	s := strings.TrimSpace(rePrompt.ReplaceAllString(strings.TrimSpace(l), ""))
	s = strings.TrimPrefix(s, "sudo ")
	if strings.HasPrefix(s, cmd) {
		return s, true
	}
	return "", false
}

// ellipses are how a truncated column ends: "…", its UTF-8 bytes read as
// Latin-1 or Windows-1252 ("â€¦", "â¦"), or three dots.
var ellipses = []string{"…", "â€¦", "â¦", "..."}

func truncatedText(s string) (string, bool) {
	for _, e := range ellipses {
		if t, ok := strings.CutSuffix(s, e); ok {
			return t, true
		}
	}
	return s, false
}

const states = `new|allocated|pending|assigned|accepted|preparing|ready|starting|running|complete|shutdown|failed|rejected|remove|orphaned`

// A `docker service ps` row: ID, "\_" for an older task of the replica,
// NAME, IMAGE, NODE (empty while pending), DESIRED STATE, CURRENT STATE
// with its age, ERROR in quotes, PORTS.
var rePSRow = regexp.MustCompile(`(?i)^\s*([a-z0-9]{10,25})\s+(\\\s?_\s*)?(\S+)\s+(\S+)\s+(?:(\S+)\s+)??(` + states + `)\s+(` + states + `)((?:\s+(?:less than a second|about an? \w+|an? \w+|\d+ \w+) ago)?)(?:\s+(".*)|\s+(\S.*))?$`)

// ParseServicePS reads `docker service ps [--no-trunc] SERVICE...`. now
// turns the ages ("3 seconds ago") into times.
func ParseServicePS(text string, now time.Time) (*State, Parsed, error) {
	st := &State{Source: "docker service ps"}
	short := 0
	p := scan(text, st, "docker service ps", "DESIRED STATE", rePSRow, func(lines []string, i *int, m []string) bool {
		errText := m[9]
		// A wrapped ERROR: its closing quote is on a later line.
		for errText != "" && !closedQuote(errText) && *i+1 < len(lines) && !looksLikeRow(lines[*i+1]) && strings.TrimSpace(lines[*i+1]) != "" {
			*i++
			errText += lines[*i]
		}
		t := Task{ID: m[1], Current: m[2] == "", Image: m[4], Node: m[5],
			DesiredState: strings.ToLower(m[6]), State: strings.ToLower(m[7])}
		t.Service, t.Slot = splitTaskName(m[3])
		if age, ok := parseAge(strings.TrimSpace(m[8])); ok && !now.IsZero() {
			t.Time = now.Add(-age)
		}
		if errText != "" {
			t.Err, t.Truncated = quotedErr(errText)
		}
		if len(t.ID) < 25 {
			short++
		}
		if code := reExit.FindStringSubmatch(t.Err); code != nil {
			t.ExitCode, _ = strconv.Atoi(code[1])
		}
		st.Tasks = append(st.Tasks, t)
		return true
	})
	if p.Rows == 0 {
		return nil, p, ErrNoRows
	}
	for _, t := range st.Tasks {
		p.Truncated = p.Truncated || t.Truncated
	}
	// Without --no-trunc the IDs are cut to 12 characters too.
	if short == p.Rows && !strings.Contains(p.Command, "--no-trunc") {
		p.Truncated = true
	}
	return st, p, nil
}

// scan reads the rows of one command's output: it notes the command line
// and the managers' "no leader" answer, skips the header and blank lines,
// matches each row with re (joining wrapped lines) and hands it to row,
// which may read further lines (moving *i) and returns false when it
// cannot use the row. Lines that start like a row but are not are listed
// in Skipped.
func scan(text string, st *State, cmd, headerCol string, re *regexp.Regexp, row func(lines []string, i *int, m []string) bool) Parsed {
	var p Parsed
	lines := cleanLines(text)
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if noLeader(l) {
			st.NoLeader = strings.TrimSpace(l)
			continue
		}
		if c, ok := commandIn(l, cmd); ok {
			p.Command = c
			continue
		}
		if strings.TrimSpace(l) == "" || isHeader(l, headerCol) {
			continue
		}
		m, next := rowAt(lines, i, re)
		if m == nil {
			if looksLikeRow(l) {
				p.Skipped = append(p.Skipped, strings.TrimSpace(l))
			}
			continue
		}
		i = next
		if !row(lines, &i, m) {
			p.Skipped = append(p.Skipped, strings.TrimSpace(l))
			continue
		}
		p.Rows++
	}
	return p
}

// closedQuote reports whether an ERROR field that opens with a quote also
// closes it (the error itself may hold quotes: type "bind").
func closedQuote(s string) bool {
	s = strings.TrimSpace(s)
	return len(s) >= 2 && strings.LastIndex(s, `"`) > 0
}

// quotedErr takes the error out of its quotes, and says whether the CLI
// cut it short.
func quotedErr(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, `"`)
	if i := strings.LastIndex(s, `"`); i >= 0 {
		s = s[:i] // PORTS may follow
	}
	return truncatedText(s)
}

// splitTaskName splits "ldap.1" into the service and its slot; a global
// service's task is "name.NODEID".
func splitTaskName(n string) (string, int) {
	i := strings.LastIndex(n, ".")
	if i <= 0 {
		return n, 0
	}
	slot, err := strconv.Atoi(n[i+1:])
	if err != nil {
		return n[:i], 0
	}
	return n[:i], slot
}

// parseAge reads the CLI's age, as go-units HumanDuration writes it:
// "3 seconds ago", "less than a second ago", "about an hour ago".
func parseAge(s string) (time.Duration, bool) {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), " ago")
	if s == "" {
		return 0, false
	}
	switch s {
	case "less than a second":
		return 0, true
	case "about a minute", "a minute":
		return time.Minute, true
	case "about an hour", "an hour":
		return time.Hour, true
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 || n > 1_000_000 {
		return 0, false
	}
	unit := map[string]time.Duration{
		"second": time.Second, "minute": time.Minute, "hour": time.Hour,
		"day": 24 * time.Hour, "week": 7 * 24 * time.Hour, "month": 30 * 24 * time.Hour, "year": 365 * 24 * time.Hour,
	}[strings.TrimSuffix(f[1], "s")]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// isHeader reports whether l is a header line holding col.
func isHeader(l, col string) bool {
	return strings.Contains(l, col) && strings.HasPrefix(strings.TrimSpace(l), "ID")
}

var reIDStart = regexp.MustCompile(`^\s*[a-z0-9]{12,25}\s`)

// looksLikeRow reports whether l starts like a row (with a swarm ID).
func looksLikeRow(l string) bool { return reIDStart.MatchString(l) }

// A `docker node ls` row: ID ("*" marks this node), HOSTNAME, STATUS,
// AVAILABILITY, MANAGER STATUS (empty for a worker), ENGINE VERSION (since
// 17.x).
var reNodeRow = regexp.MustCompile(`(?i)^\s*([a-z0-9]{10,25})(\s+\*)?\s+(\S+)\s+(?:(?:accepted|pending|rejected)\s+)?(ready|down|unknown|disconnected)\s+(active|pause|drain)(?:\s+(leader|reachable|unreachable))?(?:\s+(\S+))?\s*$`)

// ParseNodeLS reads `docker node ls`.
func ParseNodeLS(text string) (*State, Parsed, error) {
	st := &State{Source: "docker node ls"}
	p := scan(text, st, "docker node ls", "AVAILABILITY", reNodeRow, func(_ []string, _ *int, m []string) bool {
		n := Node{ID: m[1], Self: m[2] != "", Hostname: m[3], State: strings.ToLower(m[4]),
			Availability: strings.ToLower(m[5]), Role: "worker", Engine: m[7]}
		if mgr := strings.ToLower(m[6]); mgr != "" {
			n.Role = "manager"
			n.Leader = mgr == "leader"
			n.Reachability = mgr
			if n.Leader {
				n.Reachability = "reachable"
			}
		}
		if n.Self {
			st.NodeID, st.Manager, st.LocalState = n.ID, true, "active"
		}
		st.Nodes = append(st.Nodes, n)
		return true
	})
	if p.Rows == 0 {
		return nil, p, ErrNoRows
	}
	return st, p, nil
}

// A `docker service ls` row: ID, NAME, MODE, REPLICAS ("0/1", "1/1 (max
// 1 per node)", "0/1 (1/1 completed)"), IMAGE, PORTS.
var reServiceRow = regexp.MustCompile(`(?i)^\s*([a-z0-9]{10,25})\s+(\S+)\s+(replicated job|global job|replicated-job|global-job|replicated|global)\s+(\d+)/(\d+)(?:\s+\(([^)]*)\))?\s+(\S+)(?:\s+.*)?$`)

// ParseServiceLS reads `docker service ls`.
func ParseServiceLS(text string) (*State, Parsed, error) {
	st := &State{Source: "docker service ls"}
	p := scan(text, st, "docker service ls", "REPLICAS", reServiceRow, func(_ []string, _ *int, m []string) bool {
		run, err1 := strconv.Atoi(m[4])
		want, err2 := strconv.Atoi(m[5])
		if err1 != nil || err2 != nil {
			return false
		}
		mode := strings.ReplaceAll(strings.ToLower(m[3]), " ", "-")
		s := Service{ID: m[1], Name: m[2], Mode: mode, Running: run, Desired: want, Image: m[7]}
		if strings.HasSuffix(mode, "-job") {
			s.Desired = -1 // "0/1 (1/1 completed)": a finished job runs nothing
		}
		st.Services = append(st.Services, s)
		return true
	})
	if p.Rows == 0 {
		return nil, p, ErrNoRows
	}
	return st, p, nil
}

// rowAt matches the row starting at lines[i], joining up to three
// following lines when a terminal or a web page wrapped it: first as they
// are (a wrap inside a word), then with a space (a wrap at padding whose
// blanks were trimmed). It returns the match and the last line used.
func rowAt(lines []string, i int, re *regexp.Regexp) ([]string, int) {
	if m := re.FindStringSubmatch(lines[i]); m != nil {
		return m, i
	}
	if !looksLikeRow(lines[i]) {
		return nil, i
	}
	joined := lines[i]
	for k := i + 1; k < len(lines) && k <= i+3; k++ {
		if looksLikeRow(lines[k]) || strings.TrimSpace(lines[k]) == "" {
			break
		}
		for _, sep := range []string{"", " "} {
			if m := re.FindStringSubmatch(joined + sep + lines[k]); m != nil {
				return m, k
			}
		}
		joined += lines[k]
	}
	return nil, i
}

// noLeader reports whether l is the managers' answer when the Raft
// majority is lost.
func noLeader(l string) bool { return strings.Contains(l, "does not have a leader") }
