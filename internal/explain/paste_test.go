package explain

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pasteMangling is what happens to a capture on its way to explain: each
// must leave the diagnosis unchanged.
var pasteMangling = []struct {
	name string
	// only limits it to formats it cannot break (a terminal's hard wrap
	// cuts numbers in JSON and "Key: value" lines in half).
	only string
	f    func(string) string
}{
	{"windows line ends", "", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }},
	{"colours", "", func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if l != "" {
				lines[i] = "\x1b[1;33m" + l + "\x1b[0m"
			}
		}
		return strings.Join(lines, "\n")
	}},
	{"trailing blanks", "", func(s string) string { return strings.ReplaceAll(s, "\n", "  \t\n") }},
	{"markdown quote", "", func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight("> "+l, " ")
		}
		return strings.Join(lines, "\n")
	}},
	{"markdown fence", "", func(s string) string { return "Here is the output:\n\n```\n" + s + "\n```\n" }},
	{"terminal wrap at 80 columns", "docker-ps", func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			r := []rune(l)
			for len(r) > 80 {
				out = append(out, string(r[:80]))
				r = r[80:]
			}
			out = append(out, string(r))
		}
		return strings.Join(out, "\n")
	}},
}

// summarise is a capture's diagnosis by mode, severity and subject.
func summarise(t *testing.T, text string) (formats []string, findings []string) {
	t.Helper()
	for _, in := range Clean("paste", []byte(text), explainNow) {
		f, ok := Recognise(&in, All())
		if !ok {
			continue
		}
		formats = append(formats, f.Name)
		res, err := Explain(&in, f)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, g := range res.Findings {
			findings = append(findings, fmt.Sprintf("%s %s %s", g.Mode, g.Severity, g.Subject))
		}
	}
	slices.Sort(findings)
	return formats, findings
}

func TestPasteManglingKeepsDiagnosis(t *testing.T) {
	files, _ := filepath.Glob("testdata/docker-*.txt")
	for _, name := range []string{"kernel-1.txt", "kernel-7.txt", "proxmox-5.txt"} {
		files = append(files, filepath.Join("testdata/samples", name))
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The "# source:" line is the fixture's, not the paste's.
		_, text, _ := strings.Cut(string(b), "\n")
		formats, want := summarise(t, text)
		for _, m := range pasteMangling {
			if m.only != "" && !slices.Contains(formats, m.only) {
				continue
			}
			t.Run(filepath.Base(path)+"/"+m.name, func(t *testing.T) {
				gotFormats, got := summarise(t, m.f(text))
				if !slices.Equal(gotFormats, formats) || !slices.Equal(got, want) {
					t.Errorf("formats %q findings\n  %s\nwant %q\n  %s", gotFormats, strings.Join(got, "\n  "), formats, strings.Join(want, "\n  "))
				}
			})
		}
	}
}
