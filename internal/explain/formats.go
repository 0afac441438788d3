package explain

// All lists every format hinomi reads, in the order ties are broken: the
// more specific formats first, the log format (which takes any text with
// log lines) last. Each family keeps its own block.
func All() []Format {
	var fs []Format

	// Docker.

	// Docker Swarm.

	// Kubernetes.
	fs = append(fs, K8sGetJSON, K8sDescribePod, K8sDescribeNode, K8sGetPods, K8sGetNodes, K8sCrictlPs)

	// Proxmox VE and corosync.

	// DRBD, ZFS, md RAID and SMART.

	// Logs: last, as any text with log lines is one.

	return fs
}
