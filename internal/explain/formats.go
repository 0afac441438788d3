package explain

// All lists every format hinomi reads, in the order ties are broken: the
// more specific formats first, the log format (which takes any text with
// log lines) last. Each family keeps its own block.
func All() []Format {
	var fs []Format

	// Docker.
	fs = append(fs, dockerPS, dockerInspect, dockerInfo)

	// Docker Swarm.
	fs = append(fs, swarmServicePS, swarmNodeLS, swarmServiceLS)

	// Kubernetes.
	fs = append(fs, K8sGetJSON, K8sDescribePod, K8sDescribeNode, K8sGetPods, K8sGetNodes, K8sCrictlPs)

	// Proxmox VE and corosync.
	fs = append(fs, pvecmStatus(), corosyncQuorumtool(), haManagerStatus(), pvesrStatus(), pvesmStatus(), pveGuestLock())

	// DRBD, ZFS, md RAID and SMART.
	fs = append(fs, DRBDJSON, ProcDRBD, DRBDEvents2, DRBDStatus, ZpoolStatus, Mdstat, SmartctlJSON, SmartctlText)

	// Logs: last, as any text with log lines is one.
	fs = append(fs, logs)

	return fs
}
