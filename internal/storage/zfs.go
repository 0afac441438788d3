package storage

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Pool is one pool of `zpool status`.
type Pool struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Status string `json:"status,omitempty"`
	Action string `json:"action,omitempty"`
	// Scan is the "scan:" text, its lines joined.
	Scan string `json:"scan,omitempty"`
	// ScanKind is scrub or resilver; ScanRunning says it is in progress.
	ScanKind    string  `json:"scan_kind,omitempty"`
	ScanRunning bool    `json:"scan_running,omitempty"`
	ScanPercent float64 `json:"scan_percent"` // -1 when not printed
	ScanToGo    string  `json:"scan_to_go,omitempty"`
	// ScanTime is when the last scan ended (or the running one began), as
	// printed (the host's local time, read as UTC); zero when unknown.
	ScanTime time.Time `json:"scan_time,omitzero"`
	// Vdevs are the top of the configuration tree: the pool's own row
	// first (it has the data vdevs as children), then the log, cache,
	// spare, special and dedup sections.
	Root     *Vdev   `json:"root,omitempty"`
	Sections []*Vdev `json:"sections,omitempty"`
	// Errors is the "errors:" text; DataErrors the count in it (-1 when
	// it names files instead of counting them).
	Errors     string `json:"errors,omitempty"`
	DataErrors int    `json:"data_errors"`
}

// Vdev is one row of a pool's configuration.
type Vdev struct {
	Name  string `json:"name"`
	State string `json:"state,omitempty"`
	// Read, Write and Cksum are the error counters; -1 when not printed.
	// `zpool status` without -p abbreviates them ("13.4M"): they are
	// expanded.
	Read     int64   `json:"read"`
	Write    int64   `json:"write"`
	Cksum    int64   `json:"cksum"`
	Note     string  `json:"note,omitempty"` // "was /dev/sdb1", "too many errors", "(resilvering)"
	Children []*Vdev `json:"children,omitempty"`
}

// ParseZpoolStatus reads `zpool status` (any version from 0.6 to 2.x;
// with or without -p, -v, -x). It returns the pools it found and how many
// lines it could not place.
func ParseZpoolStatus(b []byte) (pools []Pool, skipped int) {
	var cur *Pool
	field := "" // the header field a continuation line belongs to
	inConfig := false
	base := -1 // indentation of the pool's own row
	var stack []*Vdev
	var depths []int
	flush := func() {
		if cur != nil {
			finishScan(cur)
			pools = append(pools, *cur)
		}
		cur, inConfig, base, stack, depths, field = nil, false, -1, nil, nil, ""
	}
	for _, line := range cleanLines(b) {
		if _, ok := promptCommand(line); ok {
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		key, val, isKey := strings.Cut(t, ":")
		if isKey && !strings.ContainsAny(key, " \t") || isKey && key == "see" {
			val = strings.TrimSpace(val)
			switch key {
			case "pool":
				flush()
				cur = &Pool{Name: val, ScanPercent: -1, DataErrors: 0}
				continue
			case "state", "status", "action", "scan", "see", "config", "errors", "remove", "checkpoint", "expand":
				if cur == nil {
					if key == "errors" || key == "state" {
						skipped++
						continue
					}
					cur = &Pool{ScanPercent: -1}
				}
				field, inConfig = key, key == "config"
				switch key {
				case "state":
					cur.State = val
				case "status":
					cur.Status = val
				case "action":
					cur.Action = val
				case "scan":
					cur.Scan = val
				case "errors":
					cur.Errors = val
					inConfig = false
				}
				continue
			}
		}
		if inConfig {
			if strings.HasPrefix(t, "NAME") && strings.Contains(t, "STATE") {
				continue
			}
			if cur.Errors != "" {
				continue
			}
			ind := indent(line)
			f := strings.Fields(t)
			v := &Vdev{Name: f[0], Read: -1, Write: -1, Cksum: -1}
			if len(f) > 1 && isVdevState(f[1]) {
				v.State = f[1]
				n := 2
				for _, p := range []*int64{&v.Read, &v.Write, &v.Cksum} {
					if n < len(f) {
						if x, ok := zfsCount(f[n]); ok {
							*p = x
							n++
						}
					}
				}
				if n < len(f) {
					v.Note = strings.Join(f[n:], " ")
				}
			}
			if base < 0 {
				base = ind
				cur.Root = v
				stack, depths = []*Vdev{v}, []int{ind}
				continue
			}
			if ind <= base {
				// A section header (logs, cache, spares, special, dedup) or
				// a device at the top level of one.
				if v.State == "" || len(cur.Sections) == 0 {
					cur.Sections = append(cur.Sections, v)
					stack, depths = []*Vdev{v}, []int{ind}
					continue
				}
			}
			for len(depths) > 1 && depths[len(depths)-1] >= ind {
				stack, depths = stack[:len(stack)-1], depths[:len(depths)-1]
			}
			parent := stack[len(stack)-1]
			parent.Children = append(parent.Children, v)
			stack, depths = append(stack, v), append(depths, ind)
			continue
		}
		if cur == nil {
			skipped++
			continue
		}
		// A continuation of the field above (status, action, scan and
		// errors wrap onto indented lines).
		switch field {
		case "status":
			cur.Status += " " + t
		case "action":
			cur.Action += " " + t
		case "scan":
			cur.Scan += "\n" + t
		case "errors":
			cur.Errors += "\n" + t
		case "see":
		default:
			skipped++
		}
	}
	flush()
	return pools, skipped
}

func indent(line string) int {
	n := 0
	for _, c := range line {
		switch c {
		case ' ':
			n++
		case '\t':
			n += 8 - n%8
		default:
			return n
		}
	}
	return n
}

func isVdevState(s string) bool {
	switch s {
	case "ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "REMOVED", "UNAVAIL", "AVAIL", "INUSE", "SUSPENDED", "SPLIT":
		return true
	}
	return false
}

// zfsCount reads an error counter: "0", "253", "13.4M", "1.02K".
func zfsCount(s string) (int64, bool) {
	mult := 1.0
	switch s[len(s)-1] {
	case 'K':
		mult = 1e3
	case 'M':
		mult = 1e6
	case 'G':
		mult = 1e9
	case 'T':
		mult = 1e12
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, false
	}
	return int64(f * mult), true
}

var (
	reScanPct  = regexp.MustCompile(`([\d.]+)% done`)
	reScanToGo = regexp.MustCompile(`(?:,\s*|at \S+, )((?:\d+ days )?[\dhms:]+) to go`)
	reScanTime = regexp.MustCompile(`(?:on|since) ((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})`)
	reDataErrs = regexp.MustCompile(`^(\d+) data errors`)
)

func finishScan(p *Pool) {
	s := p.Scan
	switch {
	case strings.HasPrefix(s, "scrub"):
		p.ScanKind = "scrub"
	case strings.HasPrefix(s, "resilver"):
		p.ScanKind = "resilver"
	}
	p.ScanRunning = strings.Contains(s, "in progress")
	if m := reScanPct.FindStringSubmatch(s); m != nil {
		p.ScanPercent, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reScanToGo.FindStringSubmatch(s); m != nil {
		p.ScanToGo = m[1]
	}
	if m := reScanTime.FindStringSubmatch(s); m != nil {
		if t, err := time.Parse("Mon Jan _2 15:04:05 2006", strings.Join(strings.Fields(m[1]), " ")); err == nil {
			p.ScanTime = t
		} else if t, err := time.Parse("Mon Jan 2 15:04:05 2006", strings.Join(strings.Fields(m[1]), " ")); err == nil {
			p.ScanTime = t
		}
	}
	if m := reDataErrs.FindStringSubmatch(p.Errors); m != nil {
		p.DataErrors, _ = strconv.Atoi(m[1])
	} else if strings.Contains(p.Errors, "Permanent errors") {
		p.DataErrors = -1
	}
}

// PoolUsage is one line of `zpool list -Hp -o name,size,alloc,free,cap,health`.
type PoolUsage struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Alloc  int64  `json:"alloc"`
	Free   int64  `json:"free"`
	Cap    int    `json:"cap"` // percent
	Health string `json:"health"`
}

// ZpoolListArgs is the zpool list command the parser expects.
var ZpoolListArgs = []string{"zpool", "list", "-Hp", "-o", "name,size,alloc,free,cap,health"}

// ParseZpoolList reads `zpool list`: the scripted form ZpoolListArgs
// prints, or the default table with its header (as people paste it).
func ParseZpoolList(b []byte) []PoolUsage {
	cols := []string{"NAME", "SIZE", "ALLOC", "FREE", "CAP", "HEALTH"}
	var out []PoolUsage
	for _, line := range cleanLines(b) {
		if _, ok := promptCommand(line); ok {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || indent(line) > 0 {
			continue // empty, or a vdev row of zpool list -v
		}
		if f[0] == "NAME" {
			cols = f
			continue
		}
		if len(f) < len(cols) && len(f) < 6 {
			continue
		}
		u := PoolUsage{}
		ok := true
		for i, c := range cols {
			if i >= len(f) {
				break
			}
			v := f[i]
			switch c {
			case "NAME":
				u.Name = v
			case "SIZE":
				u.Size, ok = size(v, ok)
			case "ALLOC":
				u.Alloc, ok = size(v, ok)
			case "FREE":
				u.Free, ok = size(v, ok)
			case "CAP":
				u.Cap, _ = strconv.Atoi(strings.TrimSuffix(v, "%"))
			case "HEALTH":
				u.Health = v
			}
		}
		if ok && u.Name != "" && u.Size > 0 {
			// A paste of two commands lists a pool twice: keep the later.
			out = slices.DeleteFunc(out, func(x PoolUsage) bool { return x.Name == u.Name })
			out = append(out, u)
		}
	}
	return out
}

// size reads a byte count, exact (-p) or abbreviated ("9.08T").
func size(s string, ok bool) (int64, bool) {
	if !ok {
		return 0, false
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	mult := map[byte]float64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40, 'P': 1 << 50}[s[len(s)-1]]
	if mult == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(s[:len(s)-1], 64)
	if err != nil {
		return 0, false
	}
	return int64(f * mult), true
}
