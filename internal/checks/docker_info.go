package checks

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/system"

	"github.com/hinomi/hinomi/internal/finding"
)

// DockerInfoFindings diagnoses what the engine says of itself (GET /info,
// `docker info`): a Swarm node in error, locked or stuck joining (FM-D10),
// and a devicemapper pool filling up (FM-C2). It also returns plain
// sentences on the rest: the containers by state, the storage driver and
// the engine's own warnings, which are facts about its setup rather than
// failures.
func DockerInfoFindings(info system.Info) ([]finding.Finding, []string) {
	var out []finding.Finding
	var notes []string
	name := info.Name
	if name == "" {
		name = "(unnamed)"
	}

	if info.Containers > 0 || info.ContainersRunning+info.ContainersPaused+info.ContainersStopped > 0 {
		n := fmt.Sprintf("%d containers: %d running, %d paused, %d stopped", info.Containers, info.ContainersRunning, info.ContainersPaused, info.ContainersStopped)
		if info.ContainersPaused > 0 {
			n += " (a paused container is frozen and serves nothing: docker ps --filter status=paused names them)"
		}
		notes = append(notes, n+".")
	}
	if info.Driver != "" {
		n := "Storage driver " + info.Driver
		for _, kv := range info.DriverStatus {
			if kv[0] == "Backing Filesystem" {
				n += " on " + kv[1]
			}
		}
		if info.DockerRootDir != "" {
			n += ", in " + info.DockerRootDir
		}
		notes = append(notes, n+".")
	}
	for _, w := range info.Warnings {
		notes = append(notes, "The engine warns: "+strings.TrimPrefix(w, "WARNING: "))
	}

	sw := info.Swarm
	vars := map[string]string{"platform": "swarm", "status": string(sw.LocalNodeState)}
	if info.Name != "" {
		vars["node"] = info.Name
	}
	if sw.NodeID != "" {
		vars["node_id"] = sw.NodeID
	}
	var summary string
	sev := finding.High
	switch sw.LocalNodeState {
	case "error":
		summary = fmt.Sprintf("Swarm node %s is in error: it is not part of its swarm and runs none of its tasks", name)
	case "locked":
		summary = fmt.Sprintf("Swarm node %s is locked: after a restart of dockerd an autolocked manager waits for `docker swarm unlock` and neither manages nor runs tasks until then", name)
	case "pending":
		sev = finding.Medium
		summary = fmt.Sprintf("Swarm node %s is still joining its swarm (pending): a join that does not finish means the managers cannot be reached", name)
	default:
		if sw.Error != "" {
			summary = fmt.Sprintf("Swarm node %s (%s) reports an error", name, sw.LocalNodeState)
		}
	}
	if summary != "" {
		f := finding.Finding{Mode: "FM-D10", Severity: sev, Subject: "swarm node " + name, Summary: summary + ".",
			Evidence: finding.Evidence{Vars: vars}}
		if sw.Error != "" {
			f.Summary = summary + ": " + sw.Error
			f.Evidence.Lines = append(f.Evidence.Lines, finding.Line{Source: "docker info Swarm.Error", Text: sw.Error})
		}
		out = append(out, f)
	}

	if info.Driver == "devicemapper" {
		for _, space := range []string{"Data", "Metadata"} {
			used, total := driverBytes(info.DriverStatus, space+" Space Used"), driverBytes(info.DriverStatus, space+" Space Total")
			if total <= 0 {
				continue
			}
			if avail := driverBytes(info.DriverStatus, space+" Space Available"); avail >= 0 && total-avail > used {
				used = total - avail // a loop file on a full disk has less than total-used left
			}
			sev := finding.ForRatio(used, total)
			if sev == 0 {
				continue
			}
			pct := 100 * used / total
			out = append(out, finding.Finding{
				Mode: "FM-C2", Severity: sev, Subject: "docker devicemapper " + strings.ToLower(space) + " space",
				Summary: fmt.Sprintf("Docker's devicemapper %s space is %.0f%% used (%s of %s): when it is full, containers fail to write and new ones cannot start.",
					strings.ToLower(space), pct, finding.HumanBytes(used), finding.HumanBytes(total)),
				Evidence: finding.Evidence{
					Figures: []finding.Figure{{Name: "devicemapper " + strings.ToLower(space) + " space", Value: used, Limit: total, Unit: "bytes", Source: "docker info"}},
					Vars:    map[string]string{"mount": info.DockerRootDir, "used_pct": strconv.FormatFloat(pct, 'f', 0, 64)},
				},
			})
		}
	}
	return out, notes
}

// driverBytes reads a size such as "2.774 GB" or "107.4GB" from the
// storage driver's status; -1 when absent or unreadable.
func driverBytes(st [][2]string, key string) float64 {
	for _, kv := range st {
		if kv[0] == key {
			if v, ok := ParseDockerSize(kv[1]); ok {
				return v
			}
		}
	}
	return -1
}

// ParseDockerSize reads the sizes the docker CLI prints ("10.74 GB",
// "479.6kB", "0B", "7.8 GiB"): decimal units, and binary ones for memory.
func ParseDockerSize(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false
	}
	unit := strings.TrimSpace(s[i:])
	mult := map[string]float64{
		"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, false
	}
	return v * mult, true
}
