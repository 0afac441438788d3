package tower

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/web"
)

// An incident's postmortem carries what every host wrote in the central
// log store (docs/logs.md) around it, bounded so that a long incident or
// a chatty host does not drown the draft:
const (
	// postmortemLead is how long before the impact began the lines start.
	postmortemLead = 5 * time.Minute
	// postmortemBefore is how many lines of the lead are kept at most:
	// those nearest the start.
	postmortemBefore = 200
	// postmortemDuring is how many lines from the start on are kept at
	// most: the first ones.
	postmortemDuring = 300
	// postmortemLine is where a long line is cut.
	postmortemLine = 1024
)

// postmortemLogs writes the postmortem's section of log lines from every
// host: the lead before start, then the course of the incident to end,
// from the log store open returns.
func postmortemLogs(ctx context.Context, b *strings.Builder, open func(context.Context) (logstore.Store, error), start, end time.Time) {
	from, until := start.Add(-postmortemLead), end.Add(time.Nanosecond)
	fmt.Fprintf(b, "## Log lines from every host\n\n")
	st, err := open(ctx)
	if err != nil {
		fmt.Fprintf(b, "_The log store could not be read: %s._\n\n", err)
		return
	}
	fmt.Fprintf(b, "What every host wrote from %s before the impact began to its end (at most the %d lines nearest the start before it, and the first %d from the start on). All of them:\n\n",
		fmt.Sprintf("%d minutes", int(postmortemLead.Minutes())), postmortemBefore, postmortemDuring)
	// Whole seconds, the end rounded up: a command to copy, not to read.
	fmt.Fprintf(b, "    hinomi logs search --since '%s' --until '%s' --limit 100000\n\n",
		from.UTC().Truncate(time.Second).Format(time.RFC3339), end.UTC().Truncate(time.Second).Add(time.Second).Format(time.RFC3339))

	var before []logstore.Entry
	q := logstore.Query{MaxPriority: 7, Since: from, Until: start, Newest: true, Limit: postmortemBefore + 1}
	if err := st.Search(ctx, q, func(e logstore.Entry) bool {
		before = append(before, e)
		return len(before) <= postmortemBefore
	}); err != nil {
		fmt.Fprintf(b, "_The log store could not be searched: %s._\n\n", err)
		return
	}
	more := len(before) > postmortemBefore
	if more {
		before = before[:postmortemBefore]
	}
	slices.Reverse(before)
	fmt.Fprintf(b, "### Before the impact began (from %s)\n\n", from.UTC().Format("2006-01-02 15:04:05"))
	writeLogBlock(b, before, more, "the earlier lines of the lead are left out")

	var during []logstore.Entry
	q = logstore.Query{MaxPriority: 7, Since: start, Until: until, Limit: postmortemDuring + 1}
	if err := st.Search(ctx, q, func(e logstore.Entry) bool {
		during = append(during, e)
		return len(during) <= postmortemDuring
	}); err != nil {
		fmt.Fprintf(b, "_The log store could not be searched: %s._\n\n", err)
		return
	}
	more = len(during) > postmortemDuring
	if more {
		during = during[:postmortemDuring]
	}
	fmt.Fprintf(b, "### From the start (%s)\n\n", start.UTC().Format("2006-01-02 15:04:05"))
	writeLogBlock(b, during, more, "the later lines are left out")
}

// writeLogBlock writes lines as a fenced block, one a line: time (UTC),
// host, unit, priority and the text.
func writeLogBlock(b *strings.Builder, es []logstore.Entry, more bool, left string) {
	if len(es) == 0 {
		b.WriteString("_No line._\n\n")
		return
	}
	rows := make([]string, 0, len(es))
	for _, e := range es {
		prio := web.PriorityName(e.Priority)
		unit := e.Unit
		if unit == "" {
			unit = "-"
		}
		rows = append(rows, fmt.Sprintf("%s %s %s %s: %s", e.Time.UTC().Format("2006-01-02 15:04:05.000"), e.Host, unit, prio, oneLine(e.Line)))
	}
	// A fence longer than any run of backticks in the lines.
	fence := "```"
	for _, r := range rows {
		for strings.Contains(r, fence) {
			fence += "`"
		}
	}
	fmt.Fprintf(b, "%stext\n%s\n%s\n\n", fence, strings.Join(rows, "\n"), fence)
	if more {
		fmt.Fprintf(b, "_%d lines shown; %s (search for them as above)._\n\n", len(es), left)
	}
}

// oneLine keeps a line on one line of the draft and cut at
// postmortemLine bytes; control characters are shown as their pictures.
func oneLine(s string) string {
	if len(s) > postmortemLine {
		n := postmortemLine
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + " …[cut]"
	}
	return web.Printable(strings.ReplaceAll(s, "\t", " "))
}
