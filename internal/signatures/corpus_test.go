package signatures

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The evaluation: real distress excerpts from public issues, mailing lists
// and docs (testdata/corpus/distress, one file each: "# source: URL",
// "# modes: FM-… …" then the excerpt) must raise their modes, and real logs
// of the same software on healthy days (testdata/corpus/benign) must raise
// nothing. The test prints recall per mode and overall and the false
// alarms, and fails under the floors measured when the corpus was built
// (docs/signatures.md records the figures and the command).
//
//	go test ./internal/signatures -run TestCorpus -v
const (
	floorRecall      = 0.95 // overall recall of expected (file, mode) pairs (measured 0.965)
	floorFiles       = 150  // distress excerpts
	floorBenignFiles = 30
	maxFalseAlarms   = 0 // incidents raised by benign logs
)

type corpusFile struct {
	path, source string
	modes        []string
	text         string
}

var reMode2 = regexp.MustCompile(`^FM-[A-Z]\d+$`)

func readCorpus(t *testing.T, dir string, needModes bool) []corpusFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusFile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cf := corpusFile{path: p}
		lines := strings.SplitAfter(string(b), "\n")
		i := 0
		for ; i < len(lines) && strings.HasPrefix(lines[i], "# "); i++ {
			k, v, _ := strings.Cut(strings.TrimSpace(lines[i][2:]), ": ")
			switch k {
			case "source":
				cf.source = v
			case "modes":
				cf.modes = strings.Fields(v)
			}
		}
		cf.text = strings.Join(lines[i:], "")
		// Distress comes from public reports (a URL); a healthy log may
		// also be a capture of this project's own machines, said so.
		if !strings.HasPrefix(cf.source, "http") && (needModes || !strings.HasPrefix(cf.source, "captured ")) {
			t.Errorf("%s: no '# source: URL' header", p)
		}
		if needModes && len(cf.modes) == 0 {
			t.Errorf("%s: no '# modes:' header", p)
		}
		for _, m := range cf.modes {
			if !reMode2.MatchString(m) {
				t.Errorf("%s: mode %q is not a failure-mode ID", p, m)
			}
		}
		if strings.TrimSpace(cf.text) == "" {
			t.Errorf("%s: no log text", p)
		}
		out = append(out, cf)
	}
	return out
}

// incidentsOf scans text and returns its incidents (what a finding would
// be made of: companions, completions and minimum counts applied).
func incidentsOf(t *testing.T, m *Matcher, name, text string) []*Incident {
	t.Helper()
	agg := NewAggregator()
	if _, err := m.Scan(strings.NewReader(text), name, agg.Add); err != nil {
		t.Fatal(err)
	}
	return agg.Incidents()
}

func TestCorpus(t *testing.T) {
	m := NewMatcher(loadBuiltin(t))
	distress := readCorpus(t, "distress", true)
	benign := readCorpus(t, "benign", false)

	type tally struct{ want, hit int }
	perMode := map[string]*tally{}
	var total tally
	var misses []string
	for _, cf := range distress {
		found := map[string]bool{}
		for _, in := range incidentsOf(t, m, cf.path, cf.text) {
			found[in.Sig.Mode] = true
		}
		for _, mode := range cf.modes {
			tl := perMode[mode]
			if tl == nil {
				tl = &tally{}
				perMode[mode] = tl
			}
			tl.want++
			total.want++
			if found[mode] {
				tl.hit++
				total.hit++
			} else {
				misses = append(misses, fmt.Sprintf("%s: %s not found (%s)", filepath.Base(cf.path), mode, cf.source))
			}
		}
	}
	falseAlarms := 0
	for _, cf := range benign {
		for _, in := range incidentsOf(t, m, cf.path, cf.text) {
			falseAlarms++
			t.Logf("false alarm: %s: %s %s: %s", filepath.Base(cf.path), in.Sig.Mode, in.Sig.ID, in.First.Line)
		}
	}

	modes := make([]string, 0, len(perMode))
	for k := range perMode {
		modes = append(modes, k)
	}
	sort.Strings(modes)
	var b strings.Builder
	fmt.Fprintf(&b, "distress excerpts: %d, benign logs: %d\n", len(distress), len(benign))
	fmt.Fprintf(&b, "%-7s %6s %6s %7s\n", "mode", "found", "of", "recall")
	for _, k := range modes {
		tl := perMode[k]
		fmt.Fprintf(&b, "%-7s %6d %6d %6.1f%%\n", k, tl.hit, tl.want, 100*float64(tl.hit)/float64(tl.want))
	}
	recall := float64(total.hit) / float64(max(total.want, 1))
	fmt.Fprintf(&b, "%-7s %6d %6d %6.1f%%\n", "all", total.hit, total.want, 100*recall)
	fmt.Fprintf(&b, "false alarms on benign logs: %d\n", falseAlarms)
	t.Log("\n" + b.String())
	for _, s := range misses {
		t.Log("miss: " + s)
	}

	if len(distress) < floorFiles {
		t.Errorf("%d distress excerpts, want at least %d", len(distress), floorFiles)
	}
	if len(benign) < floorBenignFiles {
		t.Errorf("%d benign logs, want at least %d", len(benign), floorBenignFiles)
	}
	if recall < floorRecall {
		t.Errorf("recall %.3f under the floor %.3f", recall, floorRecall)
	}
	if falseAlarms > maxFalseAlarms {
		t.Errorf("%d false alarms on benign logs, at most %d allowed", falseAlarms, maxFalseAlarms)
	}
}
