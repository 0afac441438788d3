package explain

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hinomi/hinomi/internal/checks"
)

// dockerPS reads `docker ps -a` (default or --no-trunc columns, `docker
// container ls`, `docker compose ps`, podman's) and diagnoses the listed
// containers with the live restart check's rules.
var dockerPS = Format{
	Name:    "docker-ps",
	Command: "docker ps -a --no-trunc",
	Detect:  detectDockerPS,
	Explain: explainDockerPS,
}

var (
	// psAgo is how docker prints a duration: "5 seconds", "About an hour".
	psAgo = `(?:Less than a second|About an? \w+|\d+ \w+)`
	// psStatus is the STATUS column, found anywhere in a row.
	psStatus = regexp.MustCompile(`(?:^|\s)(Up ` + psAgo + `(?: \((?:healthy|unhealthy|health: starting|Paused)\))?|Exited \(-?\d+\) ` + psAgo + ` ago|Restarting \(-?\d+\) ` + psAgo + ` ago|Created|Dead|Removal In Progress)(?:\s|$)`)
	// psStatusLower is the state as docker compose ps printed it before
	// v2.7, in lower case; tried when no Docker status is in the row.
	psStatusLower = regexp.MustCompile(`(?:^|\s)(running(?: \((?:healthy|unhealthy|starting)\))?|exited \(-?\d+\)|restarting|paused|created|dead)(?:\s|$)`)
	// psCode is the exit code in a status: "Exited (137) 2 hours ago".
	psCode = regexp.MustCompile(`\((-?\d+)\)`)
	// psID is a container ID, short or full.
	psID = regexp.MustCompile(`^(?:[0-9a-f]{64}|[0-9a-f]{12})(?:\s|$)`)
	// psColumns splits a row or header at runs of two spaces or a tab.
	psColumns = regexp.MustCompile(`\s{2,}|\t+`)
)

// psHeader reports whether l is a container list's header, and its columns.
func psHeader(l string) ([]string, bool) {
	if !strings.Contains(l, "STATUS") {
		return nil, false
	}
	cols := psColumns.Split(strings.TrimSpace(l), -1)
	has := map[string]bool{}
	for _, c := range cols {
		has[c] = true
	}
	if has["LOCAL VOLUMES"] || has["SIZE"] && !has["CONTAINER ID"] {
		return nil, false // docker system df -v, not a container list
	}
	ok := has["CONTAINER ID"] || (has["NAMES"] && has["STATUS"]) ||
		(has["NAME"] && has["STATUS"] && (has["IMAGE"] || has["SERVICE"]))
	return cols, ok
}

func detectDockerPS(in *Input) int {
	lines := unwrapLines(in.Lines)
	for _, l := range lines {
		if _, ok := psHeader(l); ok {
			return 100
		}
	}
	rows, _ := parseDockerPS(lines)
	cmd := strings.Fields(in.Command)
	if len(rows) > 0 && len(cmd) >= 2 && (cmd[0] == "docker" || cmd[0] == "podman") &&
		(cmd[1] == "ps" || (cmd[1] == "container" && len(cmd) > 2 && (cmd[2] == "ls" || cmd[2] == "ps" || cmd[2] == "list"))) {
		return 95
	}
	if len(rows) > 0 {
		return 60
	}
	return 0
}

// terminalWidths are the widths at which terminals and tools commonly
// break long lines.
var terminalWidths = map[int]bool{80: true, 100: true, 120: true, 132: true, 160: true, 200: true}

// unwrapLines joins back the lines a terminal broke at its width: a line
// exactly that long followed by more text is one with the next. A header
// is never a broken line (docker sizes its columns to their contents, so
// a whole header can be exactly 120 or 132 wide), and a line that starts
// with a container ID begins a row of its own.
func unwrapLines(lines []string) []string {
	out := make([]string, 0, len(lines))
	joining := false
	for _, l := range lines {
		if joining && !psID.MatchString(l) {
			out[len(out)-1] += l
		} else {
			out = append(out, l)
		}
		_, header := psHeader(l)
		joining = l != "" && !header && terminalWidths[utf8.RuneCountInString(l)]
	}
	return out
}

// parseDockerPS reads the rows of a container list. A missing header is
// fine (the ID starts a row, the status is found by its shape, the name
// ends it); a row the terminal wrapped is joined back; lines that are not
// rows are returned as skipped.
func parseDockerPS(lines []string) (rows []checks.DockerListed, skipped []string) {
	var cols []string
	withID := true
	var raw []string
	// inRow says the last line belongs to the last row: a blank line ends
	// it, and what follows is not its wrapped tail.
	inRow := false
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			inRow = false
			continue
		}
		if c, ok := psHeader(l); ok {
			cols = c
			withID = slices.Contains(c, "CONTAINER ID")
			inRow = false
			continue
		}
		switch {
		case psID.MatchString(l) || (!withID && cols != nil):
			raw = append(raw, l)
			inRow = true
		case inRow && withID:
			// A row the terminal wrapped: join it back.
			raw[len(raw)-1] = unwrap(raw[len(raw)-1], l)
		default:
			skipped = append(skipped, l)
		}
	}
	for _, r := range raw {
		row, ok := psRow(r, cols)
		if !ok {
			skipped = append(skipped, r)
			continue
		}
		rows = append(rows, row)
	}
	return rows, skipped
}

// unwrap joins a continuation an editor or a narrower wrap made back to
// its row (breaks at a terminal's width are joined already).
func unwrap(line, next string) string {
	return line + " " + strings.TrimLeft(next, " ")
}

// psRow reads one row, by the header's columns when the row splits into
// as many, else by the shape of its fields.
func psRow(r string, cols []string) (checks.DockerListed, bool) {
	var c checks.DockerListed
	m := psStatus.FindStringSubmatchIndex(r)
	if m == nil {
		m = psStatusLower.FindStringSubmatchIndex(r)
	}
	if m == nil {
		return c, false
	}
	c.Status = r[m[2]:m[3]]
	code := 0
	if cm := psCode.FindStringSubmatch(c.Status); cm != nil {
		code, _ = strconv.Atoi(cm[1])
	}
	word, _, _ := strings.Cut(strings.ToLower(c.Status), " ")
	switch word {
	case "up", "running":
		c.State = "running"
		switch {
		case strings.HasSuffix(c.Status, "(Paused)"):
			c.State = "paused"
		case strings.HasSuffix(c.Status, "(unhealthy)"):
			c.Health = "unhealthy"
		case strings.HasSuffix(c.Status, "(healthy)"):
			c.Health = "healthy"
		case strings.HasSuffix(c.Status, "starting)"):
			c.Health = "starting"
		}
	case "exited":
		c.State, c.ExitCode = "exited", code
	case "restarting":
		c.State, c.ExitCode = "restarting", code
	case "removal":
		c.State = "removing"
	default:
		c.State = word
	}

	fields := psColumns.Split(strings.TrimSpace(r), -1)
	if len(cols) > 0 && len(fields) == len(cols) {
		for i, col := range cols {
			switch col {
			case "CONTAINER ID":
				c.ID = fields[i]
			case "NAMES", "NAME":
				c.Name = fields[i]
			case "IMAGE":
				c.Image = fields[i]
			}
		}
	}
	words := strings.Fields(r)
	if c.ID == "" && psID.MatchString(r) {
		c.ID = words[0]
	}
	if c.Image == "" && c.ID != "" && len(words) > 1 {
		c.Image = words[1]
	}
	if c.Name == "" {
		// The name ends the row, after the status and the ports.
		if tail := strings.Fields(r[m[3]:]); len(tail) > 0 {
			c.Name = tail[len(tail)-1]
		}
	}
	if c.Name == "" && c.ID == "" && len(cols) > 0 && (cols[0] == "NAME" || cols[0] == "NAMES") {
		// docker compose ps and --format tables lead with the name.
		c.Name = words[0]
	}
	if c.Name == "" && c.ID == "" {
		return c, false
	}
	// Linked containers list several names; the first is its own.
	c.Name, _, _ = strings.Cut(c.Name, ",")
	return c, true
}

func explainDockerPS(in *Input) (Result, error) {
	rows, skipped := parseDockerPS(unwrapLines(in.Lines))
	if len(rows) == 0 {
		return Result{}, fmt.Errorf("no container rows: want the output of docker ps -a, a header line and one row per container")
	}
	res := Result{Findings: checks.DockerListedFindings(rows, in.Now)}
	count := map[string]int{}
	for _, r := range rows {
		count[r.State]++
	}
	var parts []string
	for _, s := range []string{"running", "restarting", "exited", "paused", "created", "removing", "dead"} {
		if count[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[s], s))
		}
	}
	res.Notes = append(res.Notes, fmt.Sprintf("Read %d containers: %s.", len(rows), strings.Join(parts, ", ")))
	res.Notes = append(res.Notes, skippedNote(skipped)...)
	return res, nil
}

// skippedNote says which lines a format did not read, the first few
// quoted.
func skippedNote(skipped []string) []string {
	if len(skipped) == 0 {
		return nil
	}
	var q []string
	for _, s := range skipped[:min(3, len(skipped))] {
		q = append(q, strconv.Quote(clip(strings.TrimSpace(s), 80)))
	}
	more := ""
	if len(skipped) > 3 {
		more = fmt.Sprintf(" and %d more", len(skipped)-3)
	}
	return []string{fmt.Sprintf("Skipped %d lines that are not part of it: %s%s.", len(skipped), strings.Join(q, ", "), more)}
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
