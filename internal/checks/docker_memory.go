package checks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// checkDockerMemory compares each running container's memory use with its
// memory limit, read from the container's own cgroup (v1 or v2), and names
// the container that nears it: at the limit the kernel's OOM killer picks
// a victim inside it (FM-E4).
func checkDockerMemory(ctx context.Context, env *Env) (Result, error) {
	var res Result
	st, err := docker(ctx, env)
	if err != nil {
		return res, err
	}
	if st.Absent || st.Hung != "" || st.Error != "" {
		return res, ErrNotApplicable // docker-api and docker-restarts say why
	}
	var fullest *finding.Figure
	for i := range st.Containers {
		c := &st.Containers[i]
		if !c.Running || c.Pid <= 0 {
			continue
		}
		m, err := containerMemory(env.Src, c.Pid)
		if err != nil {
			if !host.Missing(err) {
				res.Blind = append(res.Blind, fmt.Sprintf("memory of container %s: %v", c.label(), err))
			}
			continue
		}
		if m.limit <= 0 {
			continue // no limit: the host's memory checks cover it
		}
		fig := finding.Figure{Name: "memory of container " + c.label(), Value: float64(m.used), Limit: float64(m.limit), Unit: "bytes", Source: m.dir}
		if fullest == nil || fig.Percent() > fullest.Percent() {
			fullest = &fig
		}
		sev := finding.ForRatio(float64(m.used), float64(m.limit))
		if sev == 0 {
			continue
		}
		name := c.label()
		vars := map[string]string{
			"resource": "memory", "used": itoa(m.used), "limit": itoa(m.limit),
			"cgroup_dir": m.dir, "image": c.Image,
		}
		c.ownerVars(vars)
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-B4", Severity: sev, Subject: "memory of container " + name,
			Summary: fmt.Sprintf("Container %s (image %s) uses %s of its %s memory limit (%.0f%%): at the limit the kernel's OOM killer ends a process inside it.",
				name, c.Image, finding.HumanBytes(float64(m.used)), finding.HumanBytes(float64(m.limit)), fig.Percent()),
			Evidence: finding.Evidence{
				Figures:   []finding.Figure{fig, {Name: "page cache the kernel can reclaim first (not counted)", Value: float64(m.inactiveFile), Unit: "bytes", Source: m.dir + "/memory.stat"}},
				Consumers: []finding.Consumer{{Kind: "container", Name: name, ID: c.ID, Value: float64(m.used), Limit: float64(m.limit), Unit: "bytes"}},
				Notes:     []string{"Use is the cgroup's charge minus its inactive page cache, as docker stats shows it."},
				Vars:      vars,
			},
		})
	}
	if fullest != nil {
		res.Headroom = append(res.Headroom, finding.Figure{Name: "fullest container memory (" + strings.TrimPrefix(fullest.Name, "memory of container ") + ")", Value: fullest.Value, Limit: fullest.Limit, Unit: "bytes", Source: fullest.Source})
	}
	return res, nil
}

// ownerVars fills the runbook variables naming the container as the
// owner, from which {{owner "limit-memory"}} prints docker update.
func (c *dockerContainer) ownerVars(vars map[string]string) {
	vars["owner"] = "docker"
	vars["owner_label"] = c.label()
	vars["container"] = c.label()
	vars["container_id"] = c.ID
}

// cgroupMemory is a memory cgroup's use and limit, in bytes; limit is -1
// when there is none.
type cgroupMemory struct {
	dir          string
	used, limit  int64
	inactiveFile int64
}

// unlimitedV1 is above any real limit: cgroup v1 writes "no limit" as the
// largest page-aligned int64.
const unlimitedV1 = int64(1) << 62

// containerMemory reads the memory cgroup of the process pid: the v1
// "memory" hierarchy when the process is in one, else the unified (v2)
// hierarchy.
func containerMemory(src *host.Source, pid int) (cgroupMemory, error) {
	b, err := src.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return cgroupMemory{}, err
	}
	v1, v2 := "", ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == "memory" {
				v1 = parts[2]
			}
		}
	}
	var m cgroupMemory
	var usageFile, limitFile, inactiveKey string
	switch {
	case v1 != "":
		m.dir = path.Join("/sys/fs/cgroup/memory", v1)
		usageFile, limitFile, inactiveKey = "memory.usage_in_bytes", "memory.limit_in_bytes", "total_inactive_file"
	case v2 != "":
		m.dir = path.Join("/sys/fs/cgroup", v2)
		usageFile, limitFile, inactiveKey = "memory.current", "memory.max", "inactive_file"
	default:
		return m, fmt.Errorf("/proc/%d/cgroup names no memory cgroup", pid)
	}
	if m.used, err = readInt(src, m.dir+"/"+usageFile); err != nil {
		return m, err
	}
	if m.limit, err = readInt(src, m.dir+"/"+limitFile); err != nil {
		return m, err
	}
	if m.limit >= unlimitedV1 {
		m.limit = -1
	}
	if st, err := src.ReadFile(m.dir + "/memory.stat"); err == nil {
		m.inactiveFile = ParseVmstat(st)[inactiveKey]
	}
	m.used = max(m.used-m.inactiveFile, 0)
	return m, nil
}
