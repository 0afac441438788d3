package runbook_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hinomi/hinomi/internal/runbook"
)

// nasty is a value with every character a shell treats specially.
const nasty = `/mnt/my disk'$(touch pwned);x|y>z&"q"*\` + "`id`"

// Every value a runbook puts into a command, whatever it holds (a mount
// point with a space, a unit with a quote), stays one whole shell word of
// a line a shell can read: no command's value is ever cut in two or run.
func TestValuesStayOneShellWord(t *testing.T) {
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("runbooks/FM-*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("runbook sources: %v (%d files)", err, len(files))
	}
	reVar := regexp.MustCompile(`\{\{v "([a-z_]+)"`)
	checked := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rb := book.Get(strings.TrimSuffix(filepath.Base(f), ".md"))
		names := map[string]bool{}
		for _, m := range reVar.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		for name := range names {
			text, err := rb.Render(map[string]string{name: nasty})
			if err != nil {
				t.Fatal(err)
			}
			for _, block := range runbook.CommandBlocks(text) {
				for _, line := range block {
					if !strings.Contains(line, "pwned") {
						continue
					}
					checked++
					whole := false
					for _, w := range shellWords(t, line) {
						if strings.Contains(w, "pwned") && !strings.Contains(w, nasty) {
							t.Errorf("%s: %s is cut apart in %q (word %q)", rb.ID, name, line, w)
						}
						whole = whole || strings.Contains(w, nasty)
					}
					if !whole {
						t.Errorf("%s: %s is not one word of %q", rb.ID, name, line)
					}
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d command lines hold a value; the test looks at too little", checked)
	}
}

// Owner commands quote their names too.
func TestOwnerCommandQuotes(t *testing.T) {
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := book.Get("FM-B1").Steps("Recover", map[string]string{"case": "process", "owner": "service", "unit": "my app@1.service", "pid": "7", "nofile_new": "4096"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := steps[0].Lines[0], `systemctl restart 'my app@1.service'`; got != want {
		t.Errorf("restart %q; want %q", got, want)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/pve/nfs":   "/mnt/pve/nfs",
		"kernel.pid_max": "kernel.pid_max",
		"/mnt/my disk":   "'/mnt/my disk'",
		"it's":           `'it'\''s'`,
		"":               "''",
		"$HOME":          "'$HOME'",
	} {
		if got := runbook.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s; want %s", in, got, want)
		}
	}
}
