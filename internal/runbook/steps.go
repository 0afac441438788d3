package runbook

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// Step is one fenced code block of a section rendered for one finding: a
// few commands that belong together.
type Step struct {
	Lines []string
	// Ready says the step fits the finding and every value in it is
	// known: nothing is left to choose but whether to run it. A step is
	// never ready when a value is a placeholder, when it depends on a
	// case the finding does not state, or when its block is marked
	// "manual" (a decision only a person can take, such as resetting the
	// host).
	Ready bool
}

// Steps renders the section name for a finding's vars and returns its
// steps. A block's info string can limit it to some cases of the finding:
//
//	```sh resource=conntrack
//	```sh resource=pids,threads owner=docker
//	```sh manual
//
// A block whose condition names another value than the finding's is left
// out; one whose condition names a variable the finding lacks is kept but
// is not ready.
func (rb *Runbook) Steps(name string, vars map[string]string) ([]Step, error) {
	text, err := rb.render(vars, true)
	if err != nil {
		return nil, err
	}
	var out []Step
	var cur *Step
	var info blockInfo
	for _, line := range strings.Split(section(text, name), "\n") {
		if s, ok := fence(line); ok {
			if cur == nil {
				info = parseInfo(s)
				cur = &Step{}
				continue
			}
			if len(cur.Lines) > 0 && !info.mismatch(vars) {
				cur.Ready = cur.Ready && !info.manual && info.known(vars)
				out = append(out, *cur)
			}
			cur = nil
			continue
		}
		if cur == nil || strings.TrimSpace(line) == "" {
			continue
		}
		if len(cur.Lines) == 0 {
			cur.Ready = true
		}
		if strings.Contains(line, markOpen) || rePlaceholder.MatchString(line) {
			cur.Ready = false
		}
		cur.Lines = append(cur.Lines, strings.NewReplacer(markOpen, "", markClose, "").Replace(line))
	}
	return out, nil
}

// rePlaceholder is a value written into a runbook for the operator to
// choose: <n>, <size>, <deployment>.
var rePlaceholder = regexp.MustCompile(`<[A-Za-z][A-Za-z0-9_ .:/-]*>`)

// blockInfo is what a fenced block's info string says about when it
// applies.
type blockInfo struct {
	when   map[string][]string
	manual bool
}

func parseInfo(s string) blockInfo {
	var b blockInfo
	for _, f := range strings.Fields(s) {
		if f == "manual" {
			b.manual = true
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			continue // the language ("sh")
		}
		if b.when == nil {
			b.when = map[string][]string{}
		}
		b.when[k] = append(b.when[k], strings.Split(v, ",")...)
	}
	return b
}

// mismatch reports whether the finding states a value the block is not
// for.
func (b blockInfo) mismatch(vars map[string]string) bool {
	for k, want := range b.when {
		if v := vars[k]; v != "" && !slices.Contains(want, v) {
			return true
		}
	}
	return false
}

// known reports whether the finding states every value the block depends
// on.
func (b blockInfo) known(vars map[string]string) bool {
	for k := range b.when {
		if vars[k] == "" {
			return false
		}
	}
	return true
}

// markOpen and markClose bracket a placeholder printed in a command for a
// value the finding lacks, so that Steps knows the step is incomplete;
// they never reach the output.
const markOpen, markClose = "\x1e", "\x1f"

// funcs are the template functions of a runbook body: v prints a value
// (or its placeholder), shv the same shell-quoted for a command line, and
// owner a command acting on the process's owner (see owners.go).
func funcs(vars map[string]string, mark bool) template.FuncMap {
	val := func(name, placeholder string) (string, bool) {
		if v := vars[name]; v != "" {
			return v, true
		}
		if mark {
			return markOpen + placeholder + markClose, false
		}
		return placeholder, false
	}
	return template.FuncMap{
		"v": func(name, placeholder string) string {
			if v := vars[name]; v != "" {
				return v
			}
			return placeholder
		},
		"shv": func(name, placeholder string) string {
			v, known := val(name, placeholder)
			if known {
				return Quote(v)
			}
			return v
		},
		"owner": func(verb string) (string, error) {
			return ownerCommand(verb, vars, val)
		},
	}
}

// shellValues makes every {{v …}} inside a fenced code block print its
// value shell-quoted ({{shv …}}), so that a mount point "/mnt/my disk" or a
// unit named with a "$" stays one word of the command. In prose the value
// is printed as it is.
func shellValues(body string) string {
	lines := strings.Split(body, "\n")
	in := false
	for i, line := range lines {
		if _, ok := fence(line); ok {
			in = !in
			continue
		}
		if in {
			lines[i] = strings.ReplaceAll(line, "{{v ", "{{shv ")
		}
	}
	return strings.Join(lines, "\n")
}

// Quote returns s as one shell word: unchanged when it holds only
// characters no POSIX shell treats specially, else in single quotes.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("@%+=:,./_-", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// errUnknownVerb is a runbook asking its owner for something no owner kind
// knows: a typo in the runbook.
func errUnknownVerb(verb string) error {
	return fmt.Errorf("owner %q: unknown verb (want one of %s)", verb, strings.Join(verbs, ", "))
}
