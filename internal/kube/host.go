package kube

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
)

// On a kubeadm control-plane node the API server's address is written in
// its static pod manifest; when the host's address changes (a DHCP lease
// moved), the manifest, the certificates and every kubeconfig still name
// the old one, and the API server cannot be reached at all, so the check
// must find it on the host, without the API.

// ManifestPath is kubeadm's kube-apiserver static pod manifest.
const ManifestPath = "/etc/kubernetes/manifests/kube-apiserver.yaml"

var reAdvertiseFlag = regexp.MustCompile(`--advertise-address=([0-9A-Fa-f.:]+)`)

// ManifestAdvertiseAddr reads the advertise address from a kube-apiserver
// manifest: its --advertise-address flag, else kubeadm's annotation.
func ManifestAdvertiseAddr(manifest string) string {
	if m := reAdvertiseFlag.FindStringSubmatch(manifest); m != nil && net.ParseIP(m[1]) != nil {
		return m[1]
	}
	for l := range strings.SplitSeq(manifest, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && strings.TrimSpace(k) == advertiseAnnotation {
			if a := AdvertiseAddr(map[string]string{advertiseAnnotation: strings.Trim(strings.TrimSpace(v), `"'`)}); net.ParseIP(a) != nil {
				return a
			}
		}
	}
	return ""
}

// HostAddr is one address of the host, with its interface.
type HostAddr struct {
	Iface string
	Addr  string
}

// ParseIPAddr reads `ip -o addr show`: "4: eth0    inet 192.0.2.2/24 …".
func ParseIPAddr(out string) []HostAddr {
	var addrs []HostAddr
	for l := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || (f[2] != "inet" && f[2] != "inet6") {
			continue
		}
		a, _, _ := strings.Cut(f[3], "/")
		if net.ParseIP(a) == nil {
			continue
		}
		addrs = append(addrs, HostAddr{Iface: strings.TrimSuffix(f[1], ":"), Addr: a})
	}
	return addrs
}

// virtualIface says an interface belongs to the container network, not
// the host's own link.
func virtualIface(name string) bool {
	for _, p := range []string{"lo", "docker", "cni", "flannel", "cali", "veth", "kube-ipvs", "vxlan", "tunl", "cilium", "weave", "br-", "virbr", "tailscale", "wg"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// HostAddressFinding is FM-C7 seen from the control-plane node itself:
// the API server is configured to advertise an address the host no
// longer has. server is the kubeconfig's API server, when known.
func HostAddressFinding(node, advertise string, addrs []HostAddr, server string) (finding.Finding, bool) {
	if net.ParseIP(advertise) == nil || len(addrs) == 0 {
		return finding.Finding{}, false
	}
	want := canonIP(advertise)
	var now []HostAddr
	for _, a := range addrs {
		if canonIP(a.Addr) == want {
			return finding.Finding{}, false
		}
		ip := net.ParseIP(a.Addr)
		if virtualIface(a.Iface) || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		// Same family as the advertise address.
		if (ip.To4() == nil) != (net.ParseIP(advertise).To4() == nil) {
			continue
		}
		now = append(now, a)
	}
	vars := map[string]string{"node": node, "old_addr": advertise}
	var have []string
	for _, a := range now {
		have = append(have, a.Addr+" on "+a.Iface)
	}
	if len(now) > 0 {
		vars["new_addr"], vars["iface"] = now[0].Addr, now[0].Iface
	}
	s := fmt.Sprintf("This host's kube-apiserver is configured to advertise %s, but the host no longer has that address", advertise)
	if len(have) > 0 {
		s += " (it has " + strings.Join(have, ", ") + ")"
	}
	s += ": the control-plane node's address changed, and the API server, its certificate and every kubeconfig still name the old one."
	notes := []string{"Read from " + ManifestPath + " and `ip -o addr show`."}
	if srv := serverIP(server); srv != "" && canonIP(srv) == want {
		notes = append(notes, "The kubeconfig's server "+server+" is that old address: kubectl cannot reach the API server there.")
	}
	return finding.Finding{
		Mode: "FM-C7", Severity: finding.High, Subject: "node " + node, Summary: s,
		Key:     finding.MakeKey("FM-C7", "node "+node),
		Runbook: "FM-C7",
		Evidence: finding.Evidence{
			Notes: notes, Vars: vars,
			Lines: []finding.Line{{Source: ManifestPath, Text: "--advertise-address=" + advertise}},
		},
	}, true
}
