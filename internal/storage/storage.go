// Package storage reads the state of the layers that keep a second copy of
// the data — DRBD replication, ZFS pools, md RAID arrays — and of the disks
// under them (SMART), and says when that second copy is gone or going. Each
// family has a parser for every shape its tools print (current and older
// versions, JSON and text) and a Diagnose that turns the parsed state into
// findings; the live checks (internal/checks) and `hinomi explain` call the
// same functions, so a pasted output and a running host get the same
// diagnosis.
package storage

import (
	"regexp"
	"strings"
	"time"
)

// reANSI matches terminal colour and cursor sequences people paste along.
var reANSI = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// rePrompt is a shell prompt in front of a pasted command:
// "root@pve1:~# ", "$ ", "[root@controller-2(dmaster*) ~]# ".
var rePrompt = regexp.MustCompile(`^(?:\S*[@:]\S*\s?\S*[#$%>]|\[[^\]]*\][#$]|[#$])\s+`)

// cleanLines splits text into lines without carriage returns, colour
// codes or trailing blanks.
func cleanLines(b []byte) []string {
	s := string(b)
	if strings.Contains(s, "\x1b") {
		s = reANSI.ReplaceAllString(s, "")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	out := strings.Split(s, "\n")
	for i, l := range out {
		out[i] = strings.TrimRight(l, " \t")
	}
	return out
}

// promptCommand returns the command a prompt line runs ("drbdadm status
// r0" from "root@a:~# drbdadm status r0") and whether the line was one.
func promptCommand(line string) (string, bool) {
	t := strings.TrimSpace(line)
	m := rePrompt.FindString(t)
	if m == "" {
		return "", false
	}
	return strings.TrimSpace(t[len(m):]), true
}

// kv splits "key:value" fields of a line into a map, keeping the order of
// keys in the returned slice.
func kv(fields []string) (map[string]string, []string) {
	m := map[string]string{}
	var order []string
	for _, f := range fields {
		k, v, ok := strings.Cut(f, ":")
		if !ok || k == "" {
			continue
		}
		if _, dup := m[k]; !dup {
			order = append(order, k)
		}
		m[k] = v
	}
	return m, order
}

// diskOf is the kernel disk name of a partition or device path, as
// smartctl wants it: /dev/sdb1 → sdb, nvme0n1p3 → nvme0n1, sdb → sdb. It
// returns "" for names that are not kernel device names (ZFS by-id names,
// GUIDs).
func diskOf(name string) string {
	name = strings.TrimPrefix(name, "/dev/")
	switch {
	case reSD.MatchString(name):
		return reSD.FindStringSubmatch(name)[1]
	case reNVMe.MatchString(name):
		return reNVMe.FindStringSubmatch(name)[1]
	}
	return ""
}

var (
	reSD   = regexp.MustCompile(`^((?:sd|vd|xvd|hd)[a-z]+)\d*$`)
	reNVMe = regexp.MustCompile(`^(nvme\d+(?:n\d+)?)(?:p\d+)?$`)
)

// secondsDur converts seconds to a duration.
func secondsDur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
