package explain

// All lists every format hinomi reads, in the order ties are broken: the
// more specific formats first, the log format (which takes any text with
// log lines) last. Each family keeps its own block.
func All() []Format {
	var fs []Format

	// Docker.

	// Docker Swarm.

	// Kubernetes.

	// Proxmox VE and corosync.
	fs = append(fs, pvecmStatus(), corosyncQuorumtool(), haManagerStatus(), pvesrStatus(), pvesmStatus())

	// DRBD, ZFS, md RAID and SMART.

	// Logs: last, as any text with log lines is one.

	return fs
}
