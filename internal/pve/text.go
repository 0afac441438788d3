// Package pve reads a Proxmox VE / corosync cluster as its operators do:
// `pvecm status` and `corosync-quorumtool -s`, `ha-manager status`, `pvesr
// status`, `pvesm status`, the section configs under /etc/pve (HA
// resources, groups and rules, replication jobs, storages, guest configs)
// and corosync's log. Each reader is a pure function of the text, so the
// live checks (internal/checks) and `hinomi explain` share them, and each
// diagnosis turns what was read into findings with their runbook values.
package pve

import (
	"regexp"
	"strings"
)

// ansi matches colour and cursor escapes a terminal paste may carry.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// prompt matches a shell prompt that a paste kept in front of a command:
// "root@pve1:~# ", "$ ", "# ".
var prompt = regexp.MustCompile(`^(?:\S+@\S+:\S*[#$]|[#$])\s+\S`)

// lines splits pasted or captured text into lines without CR, ANSI
// escapes, trailing spaces or a "> " quote prefix on every line.
func lines(text string) []string {
	text = ansi.ReplaceAllString(text, "")
	raw := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	quoted := 0
	nonEmpty := 0
	for _, l := range raw {
		if strings.TrimSpace(l) == "" {
			continue
		}
		nonEmpty++
		if strings.HasPrefix(l, ">") {
			quoted++
		}
	}
	out := make([]string, 0, len(raw))
	for _, l := range raw {
		if quoted > 0 && quoted == nonEmpty {
			l = strings.TrimPrefix(strings.TrimPrefix(l, ">"), " ")
		}
		out = append(out, strings.TrimRight(l, " \t"))
	}
	return out
}

// isPrompt reports whether a line is a shell prompt with a command.
func isPrompt(l string) bool { return prompt.MatchString(l) }

// keyValue splits "Key:   value" (the layout of pvecm and corosync-quorumtool).
func keyValue(l string) (string, string, bool) {
	k, v, ok := strings.Cut(l, ":")
	if !ok {
		return "", "", false
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), true
}
