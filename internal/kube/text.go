package kube

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// What people paste: kubectl's and crictl's tables, with a shell prompt
// or two, trailing spaces, a lost header, lines a terminal wrapped. These
// helpers are shared by the text parsers.

// reREADY is kubectl's READY column: "0/1".
var reREADY = regexp.MustCompile(`^\d+/\d+$`)

// rePrompt is a shell prompt line with the command it ran: "$ kubectl …",
// "root@pve1:~# kubectl …", "# kubectl …", "PS C:\> kubectl …".
var rePrompt = regexp.MustCompile(`^\s*(?:\S*[@:][^\s#$>]*\s*)?(?:[#$%>]|PS [^>]*>)\s*((?:sudo\s+)?(?:kubectl|k|k3s kubectl|microk8s kubectl|oc|crictl)\b.*)$`)

// PromptCommand returns the command of a prompt line, or "".
func PromptCommand(line string) string {
	m := rePrompt.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// cleanLines splits text into lines without carriage returns and trailing
// blanks, dropping prompt lines and blank lines; cmd is the last prompt's
// command.
func cleanLines(text string) (lines []string, cmd string) {
	for l := range strings.SplitSeq(text, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		if c := PromptCommand(l); c != "" {
			cmd = c
			continue
		}
		lines = append(lines, l)
	}
	return lines, cmd
}

// fields splits a table row on white space, keeping a parenthesised group
// ("6 (111s ago)", "3m (x5 over 10m)") with the token before it.
func fields(line string) []string {
	raw := strings.Fields(line)
	var out []string
	for i := 0; i < len(raw); i++ {
		tok := raw[i]
		if strings.HasPrefix(tok, "(") && len(out) > 0 {
			grp := tok
			for !strings.HasSuffix(grp, ")") && i+1 < len(raw) {
				i++
				grp += " " + raw[i]
			}
			out[len(out)-1] += " " + grp
			continue
		}
		out = append(out, tok)
	}
	return out
}

// headerFields splits a table header, keeping kubectl's and crictl's
// two-word column names together.
func headerFields(line string) []string {
	raw := strings.Fields(line)
	var out []string
	for i := 0; i < len(raw); i++ {
		if i+1 < len(raw) {
			pair := raw[i] + " " + raw[i+1]
			switch pair {
			case "NOMINATED NODE", "READINESS GATES", "POD ID", "CONTAINER ID", "LAST SEEN":
				out = append(out, pair)
				i++
				continue
			}
		}
		out = append(out, raw[i])
	}
	return out
}

// reDuration is one unit of kubectl's short durations: "3y", "24d", "6h",
// "54m", "8s".
var reDuration = regexp.MustCompile(`(\d+)([ydhms])`)

// ParseAge reads kubectl's AGE ("8m8s", "6h54m", "45d", "3y24d"). It
// returns false for "<unknown>", "<invalid>" and anything else.
func ParseAge(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" || !reDuration.MatchString(s) {
		return 0, false
	}
	if reDuration.ReplaceAllString(s, "") != "" {
		return 0, false
	}
	var d time.Duration
	for _, m := range reDuration.FindAllStringSubmatch(s, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 1_000_000 {
			return 0, false
		}
		unit := map[string]time.Duration{"y": 365 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second}[m[2]]
		d += time.Duration(n) * unit
	}
	return d, true
}

// parseRestarts reads RESTARTS: "6" or "6 (111s ago)".
func parseRestarts(s string) (int, bool) {
	first, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.Atoi(first)
	return n, err == nil && n >= 0
}

// Waiting and terminated reasons as kubectl's STATUS shows them.
var (
	waitingStatus = map[string]bool{
		"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true,
		"ErrImageNeverPull": true, "CreateContainerConfigError": true, "CreateContainerError": true,
		"RunContainerError": true, "ContainerCreating": true, "PodInitializing": true,
		"PreStartHookError": true, "PostStartHookError": true,
	}
	terminatedStatus = map[string]bool{
		"OOMKilled": true, "Error": true, "Completed": true, "ContainerCannotRun": true, "DeadlineExceeded": true,
	}
)

// PodFromStatus builds a pod from one `kubectl get pods` line: STATUS
// stands for the state of the container it names.
func PodFromStatus(ns, name, status string, restarts int, age time.Duration, hasAge bool, node string, now time.Time) Pod {
	p := Pod{Namespace: ns, Name: strings.TrimPrefix(name, "pod/"), Status: status, Restarts: restarts, Node: node}
	if node == "<none>" {
		p.Node = ""
	}
	if hasAge {
		p.Created = now.Add(-age)
	}
	reason, init := status, false
	if r, ok := strings.CutPrefix(status, "Init:"); ok {
		reason, init = r, true
	}
	switch {
	case status == "Terminating":
		p.Terminating = true
	case status == "Pending":
		p.Phase = "Pending"
	case waitingStatus[reason]:
		p.Containers = []Container{{Init: init, State: "waiting", Reason: reason, Restarts: restarts}}
		if reason == "ContainerCreating" || reason == "PodInitializing" || init {
			p.Phase = "Pending"
		}
	case terminatedStatus[reason] || strings.HasPrefix(reason, "ExitCode:"):
		c := Container{Init: init, State: "terminated", Reason: reason, Restarts: restarts}
		if code, ok := strings.CutPrefix(reason, "ExitCode:"); ok {
			if n, err := strconv.Atoi(code); err == nil {
				c.Exit = &Termination{ExitCode: n}
				c.Reason = ""
			}
		}
		p.Containers = []Container{c}
	case strings.HasPrefix(status, "Init:"):
		p.Phase = "Pending" // Init:0/1
	}
	return p
}
