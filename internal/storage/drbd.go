package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DRBDResource is one DRBD resource as one node sees it.
type DRBDResource struct {
	Name string `json:"name"`
	// Minor is set when only the device number is known (/proc/drbd of
	// DRBD 8, which prints no resource names).
	Minor     int    `json:"minor,omitempty"`
	Role      string `json:"role"`
	Suspended bool   `json:"suspended,omitempty"`
	// Node is the node that printed this view, when known (inferred from
	// several nodes' views of the same resource, or from a prompt).
	Node    string       `json:"node,omitempty"`
	Volumes []DRBDVolume `json:"volumes"`
	Peers   []DRBDPeer   `json:"peers"`
}

// DRBDVolume is one local volume (device) of a resource.
type DRBDVolume struct {
	Volume int    `json:"volume"`
	Minor  int    `json:"minor"` // -1 when not printed
	Disk   string `json:"disk"`
	// Client is "yes" for an intentionally diskless node, "no" for a node
	// that should have a disk, "" when the output does not say.
	Client  string `json:"client,omitempty"`
	Quorum  string `json:"quorum,omitempty"`
	SizeKiB int64  `json:"size_kib,omitempty"`
}

// DRBDPeer is one connection of a resource to another node.
type DRBDPeer struct {
	Name       string           `json:"name"`
	Connection string           `json:"connection"` // Connected, Connecting, StandAlone …
	Role       string           `json:"role"`
	Volumes    []DRBDPeerVolume `json:"volumes"`
}

// DRBDPeerVolume is the replication of one volume to one peer.
type DRBDPeerVolume struct {
	Volume      int    `json:"volume"`
	Replication string `json:"replication"` // Established, SyncSource, WFBitMapS …
	PeerDisk    string `json:"peer_disk"`
	PeerClient  string `json:"peer_client,omitempty"`
	// OutOfSyncKiB is -1 when not printed.
	OutOfSyncKiB int64 `json:"out_of_sync_kib"`
	// Done is the resync progress in percent, -1 when not printed.
	Done            float64 `json:"done"`
	ResyncSuspended string  `json:"resync_suspended,omitempty"`
}

func newPeerVolume(vol int) DRBDPeerVolume {
	return DRBDPeerVolume{Volume: vol, OutOfSyncKiB: -1, Done: -1}
}

// ---- drbdsetup status --json (DRBD 9) ----

type jsonRes struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Suspended any    `json:"suspended"`
	Devices   []struct {
		Volume int    `json:"volume"`
		Minor  *int   `json:"minor"`
		Disk   string `json:"disk-state"`
		Client any    `json:"client"`
		Quorum any    `json:"quorum"`
		Size   int64  `json:"size"`
	} `json:"devices"`
	Connections []struct {
		Name     string `json:"name"`
		State    string `json:"connection-state"`
		PeerRole string `json:"peer-role"`
		Peer     []struct {
			Volume      int      `json:"volume"`
			Replication string   `json:"replication-state"`
			PeerDisk    string   `json:"peer-disk-state"`
			PeerClient  any      `json:"peer-client"`
			ResyncSusp  any      `json:"resync-suspended"`
			OutOfSync   *int64   `json:"out-of-sync"`
			PercentSync *float64 `json:"percent-in-sync"`
		} `json:"peer_devices"`
	} `json:"connections"`
}

// ParseDRBDJSON reads `drbdsetup status --json`. A truncated paste is read
// up to its last complete value; truncated reports whether that happened.
func ParseDRBDJSON(b []byte) (res []DRBDResource, truncated bool, err error) {
	b = bytes.TrimSpace(jsonStart(b))
	var raw []jsonRes
	if err := json.Unmarshal(b, &raw); err != nil {
		fixed, ok := repairJSON(b)
		if !ok {
			return nil, false, fmt.Errorf("drbdsetup status --json: %w", err)
		}
		if err2 := json.Unmarshal(fixed, &raw); err2 != nil {
			return nil, false, fmt.Errorf("drbdsetup status --json: %w", err)
		}
		truncated = true
	}
	for _, r := range raw {
		out := DRBDResource{Name: r.Name, Role: r.Role, Suspended: yes(r.Suspended) == "yes"}
		for _, d := range r.Devices {
			v := DRBDVolume{Volume: d.Volume, Minor: -1, Disk: d.Disk, Client: yes(d.Client), Quorum: yes(d.Quorum), SizeKiB: d.Size}
			if d.Minor != nil {
				v.Minor = *d.Minor
			}
			out.Volumes = append(out.Volumes, v)
		}
		for _, c := range r.Connections {
			p := DRBDPeer{Name: c.Name, Connection: c.State, Role: c.PeerRole}
			for _, pd := range c.Peer {
				pv := newPeerVolume(pd.Volume)
				pv.Replication, pv.PeerDisk = pd.Replication, pd.PeerDisk
				pv.PeerClient, pv.ResyncSuspended = yes(pd.PeerClient), yes(pd.ResyncSusp)
				if pd.OutOfSync != nil {
					pv.OutOfSyncKiB = *pd.OutOfSync
				}
				// percent-in-sync is 100 on an idle peer; it is resync
				// progress only while one runs.
				if pd.PercentSync != nil && syncing(pd.Replication) {
					pv.Done = *pd.PercentSync
				}
				p.Volumes = append(p.Volumes, pv)
			}
			out.Peers = append(out.Peers, p)
		}
		res = append(res, out)
	}
	return res, truncated, nil
}

// yes normalises the booleans drbdsetup prints as true/false or "yes"/"no".
func yes(v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return x
	}
	return ""
}

// jsonStart skips a prompt or note before the first [ or {.
func jsonStart(b []byte) []byte {
	i := bytes.IndexAny(b, "[{")
	if i < 0 {
		return b
	}
	return b[i:]
}

// ---- drbdadm status / drbdsetup status (DRBD 9 text) ----

// ParseDRBDStatus reads the text of `drbdadm status` or `drbdsetup status
// [--verbose --statistics]`. A paste may hold several outputs (of several
// nodes, or of one node over time): each is returned in order. Lines it
// cannot place are counted in skipped.
func ParseDRBDStatus(b []byte) (res []DRBDResource, skipped int) {
	var cur *DRBDResource
	var peer *DRBDPeer
	// last is the object a continuation line ("size:… read:…",
	// "received:… out-of-sync:…") belongs to.
	var lastVol *DRBDVolume
	var lastPV *DRBDPeerVolume
	node := ""
	flush := func() {
		if cur != nil {
			res = append(res, *cur)
		}
		cur, peer, lastVol, lastPV = nil, nil, nil, nil
	}
	for _, line := range cleanLines(b) {
		if _, ok := promptCommand(line); ok {
			flush()
			node = promptHost(line)
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		fields := strings.Fields(t)
		m, _ := kv(fields)
		first := fields[0]
		named := !strings.Contains(first, ":")
		indented := line[0] == ' ' || line[0] == '\t'
		switch {
		case named && !indented && m["role"] != "":
			// "r0 role:Secondary" begins a resource.
			flush()
			cur = &DRBDResource{Name: first, Role: m["role"], Suspended: m["suspended"] != "" && m["suspended"] != "no", Node: node}
		case cur == nil:
			skipped++
		case named && indented:
			// "peer role:Primary", "peer connection:StandAlone",
			// "peer node-id:0 connection:Connected role:Secondary …".
			cur.Peers = append(cur.Peers, DRBDPeer{Name: first, Connection: orDefault(m["connection"], "Connected"), Role: m["role"]})
			peer = &cur.Peers[len(cur.Peers)-1]
			lastVol, lastPV = nil, nil
			if _, ok := m["peer-disk"]; ok { // peer and volume on one line
				lastPV = addPeerVolume(peer, m)
			}
		case m["peer-disk"] != "" || m["replication"] != "":
			if peer == nil {
				skipped++
				continue
			}
			lastPV = addPeerVolume(peer, m)
			lastVol = nil
		case m["disk"] != "" && peer == nil:
			v := DRBDVolume{Volume: atoiOr(m["volume"], 0), Minor: -1}
			mergeVolume(&v, m)
			cur.Volumes = append(cur.Volumes, v)
			lastVol, lastPV = &cur.Volumes[len(cur.Volumes)-1], nil
		case m["volume"] != "" && peer != nil:
			lastPV = addPeerVolume(peer, m)
		case len(m) > 0:
			// A continuation of the line before (statistics, or a line
			// wrapped at 80 columns).
			switch {
			case lastPV != nil:
				mergePeerVolume(lastPV, m)
			case lastVol != nil:
				mergeVolume(lastVol, m)
			case peer != nil:
				if m["role"] != "" {
					peer.Role = m["role"]
				}
				if m["connection"] != "" {
					peer.Connection = m["connection"]
				}
			default:
				if m["role"] != "" {
					cur.Role = m["role"]
				}
			}
		default:
			skipped++
		}
	}
	flush()
	return res, skipped
}

func addPeerVolume(p *DRBDPeer, m map[string]string) *DRBDPeerVolume {
	pv := newPeerVolume(atoiOr(m["volume"], 0))
	// drbdadm prints no replication state while it is Established.
	pv.Replication = "Established"
	if p.Connection != "Connected" {
		pv.Replication = "Off"
	}
	mergePeerVolume(&pv, m)
	p.Volumes = append(p.Volumes, pv)
	return &p.Volumes[len(p.Volumes)-1]
}

// mergeVolume sets the fields of a local volume that m names.
func mergeVolume(d *DRBDVolume, m map[string]string) {
	if v := m["minor"]; v != "" {
		d.Minor = atoiOr(v, -1)
	}
	if v := m["disk"]; v != "" {
		d.Disk = v
	}
	if v := m["client"]; v != "" {
		d.Client = v
	}
	if v := m["quorum"]; v != "" {
		d.Quorum = v
	}
	if v, err := strconv.ParseInt(m["size"], 10, 64); err == nil {
		d.SizeKiB = v
	}
}

func mergePeerVolume(pv *DRBDPeerVolume, m map[string]string) {
	if v := m["replication"]; v != "" {
		pv.Replication = v
	}
	if v := m["peer-disk"]; v != "" {
		pv.PeerDisk = v
	}
	if v := m["peer-client"]; v != "" {
		pv.PeerClient = v
	}
	if v := m["resync-suspended"]; v != "" {
		pv.ResyncSuspended = v
	}
	if v, err := strconv.ParseInt(m["out-of-sync"], 10, 64); err == nil {
		pv.OutOfSyncKiB = v
	}
	if v, err := strconv.ParseFloat(m["done"], 64); err == nil {
		pv.Done = v
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func atoiOr(s string, d int) int {
	if v, err := strconv.Atoi(s); err == nil {
		return v
	}
	return d
}

// reHost is the user@host part of a prompt.
var reHost = regexp.MustCompile(`^\[?[A-Za-z0-9_.-]+@([A-Za-z0-9_.-]+)`)

func promptHost(line string) string {
	if m := reHost.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
		return m[1]
	}
	return ""
}

// ---- /proc/drbd (DRBD 8.x) ----

// reProcDRBD is a device line of /proc/drbd in DRBD 8:
// " 1: cs:StandAlone ro:Primary/Unknown ds:UpToDate/Inconsistent   r-----"
// (8.3 says st: for the roles).
var reProcDRBD = regexp.MustCompile(`^\s*(\d+):\s+cs:(\S+)(?:\s+(?:ro|st):(\S+))?(?:\s+ds:(\S+))?`)

// reSynced is the resync progress line: "[=>....] sync'ed: 10.3% (…)".
var reSynced = regexp.MustCompile(`sync'ed:\s*([\d.]+)%`)

// ParseProcDRBD reads /proc/drbd. DRBD 9 prints only its version there
// (version reports it); DRBD 8 prints each device's state, by minor.
func ParseProcDRBD(b []byte) (res []DRBDResource, version string) {
	var cur *DRBDResource
	node := ""
	for _, line := range cleanLines(b) {
		if _, ok := promptCommand(line); ok {
			node, cur = promptHost(line), nil
			continue
		}
		t := strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(t, "version:"); ok {
			version = strings.Fields(v + " ?")[0]
			continue
		}
		if m := reProcDRBD.FindStringSubmatch(line); m != nil {
			if m[2] == "Unconfigured" {
				cur = nil
				continue
			}
			minor, _ := strconv.Atoi(m[1])
			roles := strings.SplitN(m[3]+"/", "/", 3)
			disks := strings.SplitN(m[4]+"/", "/", 3)
			r := DRBDResource{Minor: minor, Role: roles[0], Node: node}
			r.Volumes = []DRBDVolume{{Minor: minor, Disk: disks[0], Client: "no"}}
			conn, repl := splitCS(m[2])
			r.Peers = []DRBDPeer{{Connection: conn, Role: roles[1],
				Volumes: []DRBDPeerVolume{{Replication: repl, PeerDisk: disks[1], OutOfSyncKiB: -1, Done: -1}}}}
			res = append(res, r)
			cur = &res[len(res)-1]
			continue
		}
		if cur == nil {
			continue
		}
		pv := &cur.Peers[0].Volumes[0]
		if i := strings.Index(t, "oos:"); i >= 0 {
			if v, err := strconv.ParseInt(strings.Fields(t[i+4:] + " x")[0], 10, 64); err == nil {
				pv.OutOfSyncKiB = v
			}
		}
		if m := reSynced.FindStringSubmatch(t); m != nil {
			pv.Done, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	return res, version
}

// splitCS splits DRBD 8's cs: (which mixes connection and replication
// states) into DRBD 9's two.
func splitCS(cs string) (conn, repl string) {
	switch cs {
	case "Connected":
		return "Connected", "Established"
	case "WFConnection":
		return "Connecting", "Off"
	case "SyncSource", "SyncTarget", "WFBitMapS", "WFBitMapT", "WFSyncUUID", "PausedSyncS", "PausedSyncT",
		"VerifyS", "VerifyT", "Ahead", "Behind", "StartingSyncS", "StartingSyncT":
		return "Connected", cs
	}
	return cs, "Off"
}

// syncing reports whether a replication state moves data.
func syncing(repl string) bool {
	switch repl {
	case "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT":
		return true
	}
	return false
}

// repairJSON closes a JSON text cut off in the middle (a paste truncated
// by a terminal or an index): it drops the incomplete value and closes
// every open array and object. It reports false when there was nothing to
// repair.
func repairJSON(b []byte) ([]byte, bool) {
	var stack []byte
	inStr, esc := false, false
	cut, cutStack := -1, []byte(nil)
	for i, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			if len(stack) > 256 {
				return nil, false
			}
			stack = append(stack, c)
			cut, cutStack = i+1, append([]byte(nil), stack...)
		case ']', '}':
			if len(stack) == 0 {
				return nil, false
			}
			stack = stack[:len(stack)-1]
			cut, cutStack = i+1, append([]byte(nil), stack...)
		case ',':
			cut, cutStack = i, append([]byte(nil), stack...)
		}
	}
	if len(stack) == 0 && !inStr || cut < 0 {
		return nil, false
	}
	out := append([]byte(nil), b[:cut]...)
	out = bytes.TrimRight(out, " \t\r\n,")
	for i := len(cutStack) - 1; i >= 0; i-- {
		if cutStack[i] == '[' {
			out = append(out, ']')
		} else {
			out = append(out, '}')
		}
	}
	return out, true
}

// ErrNoDRBD says the text holds no DRBD resource.
var ErrNoDRBD = errors.New("no DRBD resource in the output")
