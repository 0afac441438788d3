package storage

import "strings"

// ParseDRBDEvents2 reads `drbdsetup events2 [--now] [--timestamps]
// [--statistics]`: "exists"/"create"/"change"/"destroy" lines for
// resources, connections, devices and peer devices. It returns the state
// the lines leave behind, in the order resources first appear.
func ParseDRBDEvents2(b []byte) (res []DRBDResource, skipped int) {
	index := map[string]int{}
	get := func(name string) *DRBDResource {
		i, ok := index[name]
		if !ok {
			i = len(res)
			index[name] = i
			res = append(res, DRBDResource{Name: name})
		}
		return &res[i]
	}
	peer := func(r *DRBDResource, name string) *DRBDPeer {
		for i := range r.Peers {
			if r.Peers[i].Name == name {
				return &r.Peers[i]
			}
		}
		r.Peers = append(r.Peers, DRBDPeer{Name: name, Connection: "Connected"})
		return &r.Peers[len(r.Peers)-1]
	}
	gone := map[string]bool{}
	for _, line := range cleanLines(b) {
		f := strings.Fields(line)
		// An optional timestamp (--timestamps) comes first.
		if len(f) > 0 && len(f[0]) > 10 && f[0][4] == '-' && strings.Contains(f[0], "T") {
			f = f[1:]
		}
		if len(f) < 3 {
			if len(f) > 0 && f[0] != "exists" {
				skipped++
			}
			continue
		}
		verb, obj := f[0], f[1]
		switch verb {
		case "exists", "create", "change", "destroy", "call", "response":
		default:
			skipped++
			continue
		}
		m, _ := kv(f[2:])
		name := m["name"]
		if name == "" || verb == "call" || verb == "response" {
			continue
		}
		if verb == "destroy" && obj == "resource" {
			gone[name] = true
			continue
		}
		delete(gone, name)
		r := get(name)
		switch obj {
		case "resource":
			if v := m["role"]; v != "" {
				r.Role = v
			}
			if v := m["suspended"]; v != "" {
				r.Suspended = v != "no"
			}
		case "device":
			vol := atoiOr(m["volume"], 0)
			var d *DRBDVolume
			for i := range r.Volumes {
				if r.Volumes[i].Volume == vol {
					d = &r.Volumes[i]
				}
			}
			if d == nil {
				r.Volumes = append(r.Volumes, DRBDVolume{Volume: vol, Minor: -1})
				d = &r.Volumes[len(r.Volumes)-1]
			}
			mergeVolume(d, m)
		case "connection", "peer-device":
			cn := m["conn-name"]
			if cn == "" {
				cn = "peer-node-" + m["peer-node-id"]
			}
			if verb == "destroy" && obj == "connection" {
				r.Peers = deletePeer(r.Peers, cn)
				continue
			}
			p := peer(r, cn)
			if obj == "connection" {
				if v := m["connection"]; v != "" {
					p.Connection = v
				}
				if v := m["role"]; v != "" {
					p.Role = v
				}
				continue
			}
			vol := atoiOr(m["volume"], 0)
			var pv *DRBDPeerVolume
			for i := range p.Volumes {
				if p.Volumes[i].Volume == vol {
					pv = &p.Volumes[i]
				}
			}
			if pv == nil {
				p.Volumes = append(p.Volumes, newPeerVolume(vol))
				pv = &p.Volumes[len(p.Volumes)-1]
			}
			mergePeerVolume(pv, m)
		}
	}
	out := res[:0]
	for _, r := range res {
		if !gone[r.Name] {
			out = append(out, r)
		}
	}
	return out, skipped
}

func deletePeer(ps []DRBDPeer, name string) []DRBDPeer {
	out := ps[:0]
	for _, p := range ps {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return out
}
