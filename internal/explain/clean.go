package explain

import (
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Clean turns what a person pasted into the inputs to explain: terminal
// colours and other escape sequences removed, Windows and old Mac line
// ends made "\n", trailing blanks dropped, a Markdown quote or code fence
// around it removed. A shell prompt line ("$ docker ps -a",
// "root@pve1:~# pvecm status") starts a new input whose Command and Host
// it names; the text before the first prompt is an input of its own. Parts
// with no text are left out. now is the time the inputs are judged at.
func Clean(name string, raw []byte, now time.Time) []Input {
	text := decodeUTF16(raw)
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = strings.TrimPrefix(text, "\uFEFF")
	text = stripEscapes(text)
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	// Web pages paste no-break spaces where a terminal had spaces.
	text = strings.ReplaceAll(text, "\u00a0", " ")

	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	lines = unquote(lines)

	var out []Input
	cur := Input{Name: name, Now: now}
	var body []string
	flush := func() {
		for len(body) > 0 && body[0] == "" {
			body = body[1:]
		}
		for len(body) > 0 && body[len(body)-1] == "" {
			body = body[:len(body)-1]
		}
		if len(body) > 0 {
			cur.Lines = body
			cur.Text = strings.Join(body, "\n")
			out = append(out, cur)
		}
		body = nil
	}
	for _, l := range lines {
		if isFence(l) {
			continue
		}
		// "```{json…" and "…}```": a fence glued to the text.
		if t := strings.TrimLeft(l, " "); strings.HasPrefix(t, "```") {
			l = strings.TrimPrefix(t, "```")
		}
		l = strings.TrimSuffix(l, "```")
		if cmd, host, ok := prompt(l); ok {
			flush()
			cur = Input{Name: name, Now: now, Command: cmd, Host: host}
			continue
		}
		body = append(body, l)
	}
	flush()
	if len(out) > 1 {
		for i := range out {
			out[i].Name = name + "#" + strconv.Itoa(i+1)
		}
	}
	return out
}

// decodeUTF16 reads text that Windows wrote as UTF-16 (PowerShell 5's
// "docker ps > out.txt" does), known by its byte-order mark; other text
// is returned as it is.
func decodeUTF16(b []byte) string {
	var order binary.ByteOrder
	switch {
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE:
		order = binary.LittleEndian
	case len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF:
		order = binary.BigEndian
	default:
		return string(b)
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 2; i+1 < len(b); i += 2 {
		u = append(u, order.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}

// escape matches terminal escape sequences: CSI (colours, cursor moves),
// OSC (titles, links) ended by BEL or ST, and two-byte escapes; and the
// remains of colour codes whose ESC byte a copy lost ("[31m").
var escape = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\[\d{1,3}(?:;\d{1,3})*m`)

func stripEscapes(s string) string {
	if !strings.ContainsAny(s, "\x1b[") {
		return s
	}
	s = escape.ReplaceAllString(s, "")
	// Other control characters but tab and line ends say nothing.
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			return -1
		}
		return r
	}, s)
}

// unquote removes a Markdown block quote ("> ") when every non-empty line
// carries one.
func unquote(lines []string) []string {
	n := 0
	for _, l := range lines {
		if l == "" {
			continue
		}
		if !strings.HasPrefix(l, ">") {
			return lines
		}
		n++
	}
	if n == 0 {
		return lines
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		l = strings.TrimPrefix(l, ">")
		out[i] = strings.TrimPrefix(l, " ")
	}
	return out
}

// isFence is a Markdown code fence line: ``` or ```sh.
func isFence(l string) bool {
	t, ok := strings.CutPrefix(strings.TrimSpace(l), "```")
	return ok && fenceInfo.MatchString(t)
}

var fenceInfo = regexp.MustCompile(`^[\w+.-]*$`)

var (
	// user@host:path$ cmd, user@host:~# cmd, host:~# cmd
	promptUserHost = regexp.MustCompile(`^(?:\([\w.-]+\) )?(?:[\w.-]+@)?([\w.-]+) ?: ?[~/][^\s$#]*[$#](?: (.*)|)$`)
	// [root@host ~]# cmd, [user@host dir]$ cmd
	promptBracket = regexp.MustCompile(`^\[[\w.-]+@([\w.-]+)(?: [^\]]*)?\][$#](?: (.*)|)$`)
	// user@host$ cmd, user@host # cmd
	promptBare = regexp.MustCompile(`^[\w.-]+@([\w.-]+) ?[$#%](?: (.*)|)$`)
	// PS C:\Users\me> cmd
	promptPS = regexp.MustCompile(`^PS [A-Za-z]:\\[^>]*> ?(.*)$`)
	// oh-my-zsh: ➜  dir git:(master) ✗ cmd
	promptZsh = regexp.MustCompile(`^➜ +\S+(?: git:\([^)]*\))?(?: ✗)?(?: (.*)|)$`)
	// a command's first word: a lowercase name or a path
	commandWord = regexp.MustCompile(`^(?:sudo |doas )?(?:[a-z][a-z0-9_.+-]*|\.?/[\w./+-]+)(?: |$)`)
)

// knownCommands start what a "# " line means as a root prompt rather than
// a comment: the tools whose output people paste, and a few of the shell.
var knownCommands = map[string]bool{
	"docker": true, "podman": true, "nerdctl": true, "ctr": true, "crictl": true, "kubectl": true, "k": true,
	"pvecm": true, "pvesm": true, "pvesr": true, "pvesh": true, "pveversion": true, "ha-manager": true, "qm": true, "pct": true,
	"corosync-quorumtool": true, "corosync-cfgtool": true, "drbdadm": true, "drbdsetup": true, "drbdmon": true,
	"zpool": true, "zfs": true, "mdadm": true, "smartctl": true, "cat": true, "journalctl": true, "dmesg": true,
	"systemctl": true, "tail": true, "grep": true, "less": true, "ls": true, "df": true, "du": true, "free": true,
	"mount": true, "lsblk": true, "ip": true, "ss": true, "uptime": true, "top": true, "ps": true, "hinomi": true,
	"sudo": true, "doas": true, "lxc-ls": true, "lxc-info": true,
}

// prompt reports whether l is a shell prompt line, and the command and host
// it names.
func prompt(l string) (cmd, host string, ok bool) {
	if m := promptBracket.FindStringSubmatch(l); m != nil {
		return strings.TrimSpace(m[2]), m[1], true
	}
	if m := promptUserHost.FindStringSubmatch(l); m != nil {
		return strings.TrimSpace(m[2]), m[1], true
	}
	if m := promptBare.FindStringSubmatch(l); m != nil && (m[2] == "" || commandWord.MatchString(m[2])) {
		return strings.TrimSpace(m[2]), m[1], true
	}
	if m := promptPS.FindStringSubmatch(l); m != nil {
		return strings.TrimSpace(m[1]), "", true
	}
	if m := promptZsh.FindStringSubmatch(l); m != nil {
		return strings.TrimSpace(m[1]), "", true
	}
	if l == "$" || l == "#" {
		return "", "", true
	}
	if rest, ok := strings.CutPrefix(l, "$ "); ok {
		return strings.TrimSpace(rest), "", true
	}
	if rest, ok := strings.CutPrefix(l, "# "); ok && looksLikeCommand(rest) {
		return strings.TrimSpace(rest), "", true
	}
	return "", "", false
}

// looksLikeCommand tells a root prompt's command ("# pvecm status") from a
// comment ("# source: …", "# HELP …", "# check the pool"): a known tool, a
// path, or a word followed by an option.
func looksLikeCommand(s string) bool {
	if !commandWord.MatchString(s) {
		return false
	}
	f := strings.Fields(s)
	w := f[0]
	if (w == "sudo" || w == "doas") && len(f) > 1 {
		w = f[1]
	}
	switch {
	case knownCommands[w], strings.Contains(w, "/"):
		return true
	case len(f) > 1 && strings.HasPrefix(f[1], "-"):
		return true
	}
	return false
}
