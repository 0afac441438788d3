package explain

import (
	"regexp"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/kube"
)

// The Kubernetes formats share this: each parses with its kube parser
// and judges with kube.Diagnose, the live check's diagnosis.

// k8sResult diagnoses what a kube parser read.
func k8sResult(name string, in *Input, p kube.Parsed, err error) (Result, error) {
	if err != nil {
		return Result{Format: name}, err
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	return Result{Format: name, Findings: kube.Diagnose(&p.Cluster, now), Notes: p.Notes}, nil
}

// k8sCommand is the command a prompt in the paste named, from the
// explain helper or the text itself.
func k8sCommand(in *Input) string {
	if in.Command != "" {
		return in.Command
	}
	for _, l := range in.Lines {
		if c := kube.PromptCommand(l); c != "" {
			return c
		}
	}
	return ""
}

// commandIs reports whether a prompt's command runs verb (e.g. "get",
// "describe") on one of kinds, "-o json" when json is set.
func commandIs(cmd, verb string, kinds ...string) bool {
	f := strings.Fields(cmd)
	for i, w := range f {
		if w != verb || i+1 >= len(f) {
			continue
		}
		k, _, _ := strings.Cut(f[i+1], "/")
		for _, want := range kinds {
			if k == want {
				return true
			}
		}
	}
	return false
}

// headerScore is 100 when a line of in starts with header's words in
// order (after an optional prefix word), 0 otherwise.
func headerScore(in *Input, re *regexp.Regexp) int {
	for _, l := range in.Lines {
		if re.MatchString(l) {
			return 100
		}
	}
	return 0
}
