package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/hinomi/hinomi/internal/checks"
)

// dockerInspect reads `docker inspect` of containers (the engine's
// container JSON, as the live check receives it) and diagnoses them with
// the live restart check's rules. It also takes one container's object
// and the `.State` or `.State.Health` part alone, as people paste them
// from `docker inspect --format '{{json .State}}'` or jq.
var dockerInspect = Format{
	Name:    "docker-inspect",
	Command: "docker inspect CONTAINER...",
	Detect:  detectDockerInspect,
	Explain: explainDockerInspect,
}

func detectDockerInspect(in *Input) int {
	t, _ := jsonStart(in.Text)
	if t == "" {
		return 0
	}
	switch {
	case strings.Contains(t, `"State"`) && (strings.Contains(t, `"RestartCount"`) || strings.Contains(t, `"HostConfig"`)):
		return 100
	case strings.Contains(t, `"FailingStreak"`) || (strings.Contains(t, `"OOMKilled"`) && strings.Contains(t, `"ExitCode"`)):
		return 90
	case strings.HasPrefix(in.Command, "docker inspect") || strings.HasPrefix(in.Command, "docker container inspect"):
		return 50
	}
	return 0
}

// parseDockerInspect reads the JSON: an array of containers, one
// container, a State or a Health object. JSON cut short (a truncated
// paste) is read up to its last complete value, and the cut is noted.
func parseDockerInspect(text, fallbackName string) ([]container.InspectResponse, []string, error) {
	text, before := jsonStart(text)
	b, notes, err := readJSON(text)
	if before > 0 {
		notes = append([]string{fmt.Sprintf("Skipped %d lines before the JSON.", before)}, notes...)
	}
	if err != nil {
		return nil, notes, err
	}
	var cs []container.InspectResponse
	if b[0] == '[' {
		if err := json.Unmarshal(b, &cs); err != nil {
			return nil, notes, fmt.Errorf("reading the container array: %w", err)
		}
	} else {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(b, &probe); err != nil {
			return nil, notes, err
		}
		var c container.InspectResponse
		switch {
		case probe["State"] != nil || probe["Id"] != nil:
			if err := json.Unmarshal(b, &c); err != nil {
				return nil, notes, err
			}
		case probe["FailingStreak"] != nil:
			var h container.Health
			if err := json.Unmarshal(b, &h); err != nil {
				return nil, notes, err
			}
			c.State = &container.State{Health: &h, Running: true, Status: "running"}
			notes = append(notes, "Only the container's health was pasted; its state is taken to be running.")
		case probe["ExitCode"] != nil || probe["Running"] != nil:
			var st container.State
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, notes, err
			}
			c.State = &st
		default:
			return nil, notes, errors.New("a JSON object that is neither a container, its State nor its Health")
		}
		if c.Name == "" && c.ID == "" {
			c.Name = fallbackName
		}
		cs = []container.InspectResponse{c}
	}
	var out []container.InspectResponse
	for _, c := range cs {
		if c.State == nil {
			notes = append(notes, fmt.Sprintf("%s is not a container (an image, volume or network?): skipped.", firstOf(strings.TrimPrefix(c.Name, "/"), c.ID, "an object")))
			continue
		}
		out = append(out, c)
	}
	return out, notes, nil
}

// jsonStart returns text from its first line that opens a JSON array or
// object, and how many lines came before it.
func jsonStart(text string) (string, int) {
	n := 0
	for rest := text; rest != ""; n++ {
		line, after, _ := strings.Cut(rest, "\n")
		if t := strings.TrimLeft(line, " `"); strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
			return strings.TrimSpace(rest), n
		}
		rest = after
	}
	return "", n
}

// readJSON reads the first JSON value of text as pasted: Markdown
// backticks around it, strings wrapped onto several lines, the end cut
// off (read up to the last complete value, with a note saying so).
func readJSON(text string) ([]byte, []string, error) {
	text = strings.Trim(strings.TrimSpace(text), "`")
	text = joinWrappedStrings(text)
	var raw json.RawMessage
	if err := json.NewDecoder(strings.NewReader(text)).Decode(&raw); err == nil {
		return raw, nil, nil
	}
	fixed, ok := closeJSON([]byte(text))
	if !ok {
		return nil, nil, errors.New("not JSON that can be read, even cut short")
	}
	return fixed, []string{"The JSON is cut short; read up to its last complete value."}, nil
}

// joinWrappedStrings removes the line breaks a terminal or an editor put
// inside JSON strings when it wrapped a long line: JSON strings hold no raw
// line break, so each is a wrap.
func joinWrappedStrings(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var b strings.Builder
	inStr, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr && c == '\n':
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// inspectTarget is the container a `docker inspect NAME` command line
// names, for a pasted State or Health object that does not.
func inspectTarget(cmd string) string {
	f := strings.Fields(strings.Split(cmd, "|")[0])
	for i := len(f) - 1; i >= 2; i-- {
		if !strings.HasPrefix(f[i], "-") && !strings.HasPrefix(f[i-1], "--format") && f[i-1] != "-f" {
			return f[i]
		}
	}
	return "(unnamed)"
}

func explainDockerInspect(in *Input) (Result, error) {
	cs, notes, err := parseDockerInspect(in.Text, inspectTarget(in.Command))
	if err != nil {
		return Result{Notes: notes}, err
	}
	now, taken := pasteTime(cs, in.Now)
	fs, states := checks.DockerInspectFindings(cs, now)
	res := Result{Findings: fs, Notes: notes}
	if taken {
		res.Notes = append(res.Notes, "Judged as of "+now.UTC().Format("2006-01-02 15:04:05 UTC")+", the latest time the paste shows.")
	}
	for _, s := range states {
		res.Notes = append(res.Notes, strings.ToUpper(s[:1])+s[1:]+".")
	}
	return res, nil
}

// pasteTime is when the paste was most likely taken: the latest time it
// holds (a start, a finish, a health check), if before now.
func pasteTime(cs []container.InspectResponse, now time.Time) (time.Time, bool) {
	var latest time.Time
	see := func(s string) {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.After(latest) && !t.After(now) {
			latest = t
		}
	}
	for _, c := range cs {
		see(c.Created)
		if s := c.State; s != nil {
			see(s.StartedAt)
			see(s.FinishedAt)
			if s.Health != nil {
				for _, p := range s.Health.Log {
					if p != nil && !p.End.IsZero() {
						see(p.End.Format(time.RFC3339Nano))
					}
				}
			}
		}
	}
	if latest.IsZero() {
		return now, false
	}
	return latest, true
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// closeJSON makes JSON cut short readable: it drops the value being cut
// and closes the open arrays and objects. It works on any prefix of valid
// JSON and reports false when there is nothing complete to keep. Its cost
// stays linear whatever it is given.
func closeJSON(b []byte) ([]byte, bool) {
	// cuts are the last points where a value just ended inside a
	// container (or one just opened).
	const keep = 16
	var cuts []int
	mark := func(at int) {
		if len(cuts) == keep {
			copy(cuts, cuts[1:])
			cuts = cuts[:keep-1]
		}
		cuts = append(cuts, at)
	}
	depth := 0
	scanJSON(b, func(i int, c byte) bool {
		switch c {
		case '{', '[':
			depth++
			mark(i + 1)
		case '}', ']':
			depth--
			if depth <= 0 {
				cuts = append(cuts[:0], -(i + 1)) // complete: keep it all
				return false
			}
			mark(i + 1)
		case ',':
			mark(i)
		}
		return true
	})
	if len(cuts) == 1 && cuts[0] < 0 {
		out := b[:-cuts[0]]
		return out, json.Valid(out)
	}
	// The last cut is nearly always valid; earlier ones cover a cut
	// between a key and its value.
	for k := len(cuts) - 1; k >= 0; k-- {
		at := cuts[k]
		var open []byte
		scanJSON(b[:at], func(_ int, c byte) bool {
			switch c {
			case '{', '[':
				open = append(open, c)
			case '}', ']':
				if len(open) > 0 {
					open = open[:len(open)-1]
				}
			}
			return true
		})
		out := bytes.TrimRight(append([]byte(nil), b[:at]...), " \t\n")
		for i := len(open) - 1; i >= 0; i-- {
			if open[i] == '{' {
				out = append(out, '}')
			} else {
				out = append(out, ']')
			}
		}
		if json.Valid(out) {
			return out, true
		}
	}
	return nil, false
}

// scanJSON calls f with each structural byte of b outside strings, until
// f returns false.
func scanJSON(b []byte, f func(i int, c byte) bool) {
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[', '}', ']', ',':
			if !f(i, c) {
				return
			}
		}
	}
}
