// Command testprogress turns `go test -json` on standard input into
// progress a person can follow: each package as it finishes (ok, FAIL, or
// no test files) with its time and test counts; the whole output of every
// test that failed and of a package that failed outside its tests (a
// build error, a panic, a timeout); every minute the packages and tests
// still running; and at the end a summary that lists each skipped test
// with its reason. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./scripts/testprogress
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	every := flag.Duration("every", time.Minute, "how often to list what is still running (0: never)")
	flag.Parse()
	if !run(os.Stdin, os.Stdout, *every, time.Now) {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Elapsed    float64
	Output     string
}

type pkgState struct {
	start   time.Time
	output  []string            // lines outside any test
	tests   map[string][]string // test → its output lines
	running map[string]time.Time
	passed  int
	failed  int
	skipped int
}

type skip struct{ pkg, test, why string }

type summary struct {
	mu       sync.Mutex
	w        io.Writer
	now      func() time.Time
	start    time.Time
	pkgs     map[string]*pkgState
	ok       int
	noTests  int
	failed   []string
	skips    []skip
	tests    [3]int // passed, failed, skipped
	anyFail  bool
	building map[string][]string // import path → build output
}

// run reads events until in ends; it reports whether everything passed.
func run(in io.Reader, w io.Writer, every time.Duration, now func() time.Time) bool {
	s := &summary{w: w, now: now, start: now(), pkgs: map[string]*pkgState{}, building: map[string][]string{}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	if every > 0 {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					s.progress()
				}
			}
		})
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			s.mu.Lock()
			fmt.Fprintf(w, "%s\n", line) // not an event: go's own words
			s.mu.Unlock()
			continue
		}
		s.handle(e)
	}
	close(done)
	wg.Wait()
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testprogress: reading go test's output: %v\n", err)
		s.anyFail = true
	}
	return s.finish()
}

func (s *summary) pkg(name string) *pkgState {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgState{start: s.now(), tests: map[string][]string{}, running: map[string]time.Time{}}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) handle(e event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Action {
	case "build-output":
		s.building[e.ImportPath] = append(s.building[e.ImportPath], e.Output)
		return
	case "build-fail":
		fmt.Fprintf(s.w, "BUILD FAIL %s\n%s", e.ImportPath, strings.Join(s.building[e.ImportPath], ""))
		delete(s.building, e.ImportPath)
		s.anyFail = true
		return
	}
	if e.Package == "" {
		return
	}
	p := s.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.output = append(p.output, e.Output)
		case "pass", "fail", "skip":
			s.packageDone(e, p)
		}
		return
	}
	switch e.Action {
	case "run":
		p.running[e.Test] = s.now()
	case "output":
		p.tests[e.Test] = append(p.tests[e.Test], e.Output)
	case "pass":
		delete(p.running, e.Test)
		delete(p.tests, e.Test)
		p.passed++
	case "skip":
		delete(p.running, e.Test)
		s.skips = append(s.skips, skip{e.Package, e.Test, skipReason(p.tests[e.Test])})
		delete(p.tests, e.Test)
		p.skipped++
	case "fail":
		delete(p.running, e.Test)
		fmt.Fprintf(s.w, "--- FAIL: %s (%s, %.2fs)\n", e.Test, e.Package, e.Elapsed)
		for _, l := range p.tests[e.Test] {
			fmt.Fprint(s.w, indent(l))
		}
		delete(p.tests, e.Test)
		p.failed++
	}
}

func (s *summary) packageDone(e event, p *pkgState) {
	counts := fmt.Sprintf("%d passed", p.passed)
	if p.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", p.skipped)
	}
	if p.failed > 0 {
		counts += fmt.Sprintf(", %d failed", p.failed)
	}
	s.tests[0] += p.passed
	s.tests[1] += p.failed
	s.tests[2] += p.skipped
	switch {
	case e.Action == "fail":
		s.anyFail = true
		s.failed = append(s.failed, e.Package)
		// What the package printed outside its tests: a panic, a
		// timeout's stacks, a failed TestMain, "exit status 1".
		for _, l := range p.output {
			if t := strings.TrimSpace(l); t == "FAIL" || t == "PASS" || strings.HasPrefix(t, "FAIL\t") {
				continue // go test's own verdict, told below
			}
			fmt.Fprint(s.w, indent(l))
		}
		fmt.Fprintf(s.w, "FAIL  %-52s %7.1fs  (%s)\n", e.Package, e.Elapsed, counts)
	case e.Action == "skip" || p.passed+p.failed+p.skipped == 0:
		s.noTests++
		fmt.Fprintf(s.w, "?     %-52s [no test files]\n", e.Package)
	default:
		s.ok++
		fmt.Fprintf(s.w, "ok    %-52s %7.1fs  (%s)\n", e.Package, e.Elapsed, counts)
	}
	delete(s.pkgs, e.Package)
}

// progress lists the packages still running and their longest-running tests.
func (s *summary) progress() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var names []string
	for name, p := range s.pkgs {
		if len(p.running) == 0 {
			continue // not started, or between tests
		}
		tests := make([]string, 0, len(p.running))
		for t := range p.running {
			tests = append(tests, t)
		}
		sort.Slice(tests, func(i, j int) bool { return p.running[tests[i]].Before(p.running[tests[j]]) })
		if len(tests) > 3 {
			tests = append(tests[:3], fmt.Sprintf("+%d more", len(tests)-3))
		}
		for i, t := range tests {
			if at, ok := p.running[t]; ok {
				tests[i] = fmt.Sprintf("%s %s", t, now.Sub(at).Round(time.Second))
			}
		}
		names = append(names, fmt.Sprintf("%s [%s]", name, strings.Join(tests, ", ")))
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	fmt.Fprintf(s.w, "..    %s in: still running %s\n", now.Sub(s.start).Round(time.Second), strings.Join(names, "; "))
}

func (s *summary) finish() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.pkgs {
		if len(p.running) > 0 || len(p.output) > 0 {
			// go test ended without a verdict for it (killed?).
			s.anyFail = true
			s.failed = append(s.failed, name+" (no result)")
			for _, l := range p.output {
				fmt.Fprint(s.w, indent(l))
			}
		}
	}
	if len(s.skips) > 0 {
		fmt.Fprintf(s.w, "\nSkipped (%d):\n", len(s.skips))
		for _, sk := range s.skips {
			fmt.Fprintf(s.w, "  %s %s: %s\n", sk.pkg, sk.test, sk.why)
		}
	}
	fmt.Fprintf(s.w, "\npackages: %d ok, %d failed, %d without tests; tests: %d passed, %d failed, %d skipped; %s\n",
		s.ok, len(s.failed), s.noTests, s.tests[0], s.tests[1], s.tests[2], s.now().Sub(s.start).Round(time.Second))
	if len(s.failed) > 0 {
		slices.Sort(s.failed)
		fmt.Fprintf(s.w, "FAILED: %s\n", strings.Join(s.failed, ", "))
	}
	return !s.anyFail
}

// skipReason is what a skipped test said (t.Skip's message), without go
// test's own RUN/SKIP lines.
func skipReason(lines []string) string {
	var why []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		why = append(why, t)
	}
	if len(why) == 0 {
		return "(no reason given)"
	}
	return strings.Join(why, " ")
}

func indent(l string) string {
	if strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "=== ") {
		return l
	}
	return "    " + l
}
