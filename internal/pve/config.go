package pve

import (
	"fmt"
	"strconv"
	"strings"
)

// CorosyncConf is what hinomi needs from corosync.conf: the cluster name
// and the configured nodes, to name the ones missing from the membership.
type CorosyncConf struct {
	Cluster string
	Nodes   []ConfNode
}

// ConfNode is one node of corosync.conf's nodelist.
type ConfNode struct {
	ID    uint32
	Name  string
	Addrs []string // ring0_addr, ring1_addr …
	Votes int
}

// Label names a node as a person does: its name, else its first address.
func (n ConfNode) Label() string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Addrs) > 0 {
		return n.Addrs[0]
	}
	return "node " + strconv.FormatUint(uint64(n.ID), 10)
}

// ParseCorosyncConf reads corosync.conf's brace format ("section {",
// "key: value", "}"); comments and unknown sections are skipped.
func ParseCorosyncConf(text string) (*CorosyncConf, error) {
	c := &CorosyncConf{}
	var stack []string
	var cur *ConfNode
	for i, l := range lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		switch {
		case strings.HasSuffix(t, "{"):
			name := strings.TrimSpace(strings.TrimSuffix(t, "{"))
			stack = append(stack, name)
			if name == "node" && len(stack) >= 2 && stack[len(stack)-2] == "nodelist" {
				cur = &ConfNode{Votes: 1}
			}
		case t == "}":
			if len(stack) == 0 {
				return c, fmt.Errorf("line %d: unbalanced '}'", i+1)
			}
			if stack[len(stack)-1] == "node" && cur != nil {
				c.Nodes = append(c.Nodes, *cur)
				cur = nil
			}
			stack = stack[:len(stack)-1]
		default:
			k, v, ok := keyValue(t)
			if !ok {
				continue
			}
			switch {
			case len(stack) == 1 && stack[0] == "totem" && k == "cluster_name":
				c.Cluster = v
			case cur != nil && k == "nodeid":
				id, err := parseNodeID(v)
				if err != nil {
					return c, fmt.Errorf("line %d: nodeid %q: %w", i+1, v, err)
				}
				cur.ID = id
			case cur != nil && k == "name":
				cur.Name = v
			case cur != nil && k == "quorum_votes":
				cur.Votes, _ = strconv.Atoi(v)
			case cur != nil && strings.HasPrefix(k, "ring") && strings.HasSuffix(k, "_addr"):
				cur.Addrs = append(cur.Addrs, v)
			}
		}
	}
	return c, nil
}

// Section is one entry of a Proxmox section config (/etc/pve/ha/*.cfg,
// replication.cfg, storage.cfg): "type: id" followed by indented
// "key value" lines.
type Section struct {
	Type, ID string
	Props    map[string]string
	Line     int
}

// ParseSections reads a Proxmox section config. Keys are indented by a tab
// or spaces; comments start with #.
func ParseSections(text string) ([]Section, error) {
	var out []Section
	var bad []string
	for i, l := range lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		indented := l != "" && (l[0] == ' ' || l[0] == '\t')
		if !indented {
			typ, id, ok := strings.Cut(t, ":")
			if !ok || strings.ContainsAny(strings.TrimSpace(typ), " \t") {
				bad = append(bad, strconv.Itoa(i+1))
				continue
			}
			out = append(out, Section{Type: strings.TrimSpace(typ), ID: strings.TrimSpace(id), Props: map[string]string{}, Line: i + 1})
			continue
		}
		if len(out) == 0 {
			bad = append(bad, strconv.Itoa(i+1))
			continue
		}
		k, v, _ := strings.Cut(t, " ")
		if k2, v2, ok := strings.Cut(t, "\t"); ok && (len(k2) < len(k) || !strings.Contains(t, " ")) {
			k, v = k2, v2
		}
		out[len(out)-1].Props[k] = strings.TrimSpace(v)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("lines %s are neither a \"type: id\" header nor an indented property", strings.Join(bad, ", "))
	}
	return out, nil
}

// GuestConfig is what hinomi reads from a guest's config
// (/etc/pve/nodes/NODE/{qemu-server,lxc}/ID.conf): the current state's
// lock and disks, not those of its snapshots.
type GuestConfig struct {
	Lock  string
	Name  string
	Disks []GuestDisk
}

// GuestDisk is a disk or mount point: "scsi0: local-zfs:vm-100-disk-0,size=32G".
type GuestDisk struct {
	Key, Storage, Volume string
	// Replicate is false for a disk marked replicate=0.
	Replicate bool
}

// diskKey matches the config keys that hold volumes.
func diskKey(k string) bool {
	for _, p := range []string{"scsi", "sata", "ide", "virtio", "efidisk", "tpmstate", "mp", "unused"} {
		if strings.HasPrefix(k, p) {
			if _, err := strconv.Atoi(k[len(p):]); err == nil {
				return true
			}
		}
	}
	return k == "rootfs"
}

// ParseGuestConfig reads a qemu-server or lxc config. Snapshot sections
// ("[name]") and pending changes end the current state.
func ParseGuestConfig(text string) GuestConfig {
	var g GuestConfig
	for _, l := range lines(text) {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			break
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok || strings.HasPrefix(t, "#") {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "lock":
			g.Lock = v
		case k == "name" || k == "hostname":
			g.Name = v
		case diskKey(k):
			spec, opts, _ := strings.Cut(v, ",")
			if strings.Contains(opts, "media=cdrom") || spec == "none" {
				continue
			}
			st, vol, ok := strings.Cut(spec, ":")
			if !ok || strings.HasPrefix(spec, "/") {
				continue // a bind mount or a device passed through
			}
			g.Disks = append(g.Disks, GuestDisk{Key: k, Storage: st, Volume: vol, Replicate: !strings.Contains(","+opts+",", ",replicate=0,")})
		}
	}
	return g
}

// sharedTypes are storage types whose volumes every node sees.
var sharedTypes = map[string]bool{
	"nfs": true, "cifs": true, "rbd": true, "cephfs": true, "iscsi": true, "iscsidirect": true,
	"glusterfs": true, "pbs": true, "zfs": true, // zfs over iSCSI
}

// SharedStorages returns, for each storage ID of storage.cfg, whether its
// volumes are visible from every node.
func SharedStorages(cfg []Section) map[string]bool {
	out := map[string]bool{}
	for _, s := range cfg {
		out[s.ID] = sharedTypes[s.Type] || s.Props["shared"] == "1"
	}
	return out
}
