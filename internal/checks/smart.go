package checks

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/storage"
)

// smartBudget bounds all smartctl calls of one run; smartMaxDisks the
// disks asked.
const (
	smartBudget   = 10 * time.Second
	smartMaxDisks = 32
)

var reKeyUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// checkSMART is FM-C8 for the disks themselves: smartctl's overall health,
// pre-fail attributes failing now or in the past, reallocated, pending and
// offline-uncorrectable sectors, and an NVMe disk's critical warning,
// media errors and wear. Disks in standby are not woken (-n standby). A
// host without smartctl, or whose disks have no SMART (virtual disks),
// is not applicable: the latter is known from /sys/block without running
// smartctl.
func checkSMART(ctx context.Context, env *Env) (Result, error) {
	var res Result
	if env.Src.Live() {
		// Only SATA/SAS (sd*), NVMe and old IDE (hd*) disks report SMART:
		// a VM's virtio disks, loop, zram, dm and md devices do not, and
		// such a host need not run smartctl at all.
		names, err := env.Src.ReadDirNames("/sys/block")
		if err == nil && !slices.ContainsFunc(names, func(n string) bool {
			return strings.HasPrefix(n, "sd") || strings.HasPrefix(n, "nvme") || strings.HasPrefix(n, "hd")
		}) {
			return res, ErrNotApplicable
		}
	}
	scan, err := env.Smart.command(ctx, env, "smartctl-scan", "smartctl", "--scan", "-j")
	if err != nil {
		if host.Missing(err) {
			return res, ErrNotApplicable
		}
		return res, fmt.Errorf("smartctl --scan: %w", err)
	}
	devs, err := storage.ParseSmartScan(scan.Stdout)
	if err != nil {
		return res, err
	}
	if len(devs) == 0 {
		return res, ErrNotApplicable
	}
	deadline := time.Now().Add(smartBudget)
	read := 0
	for i, d := range devs {
		if i >= smartMaxDisks || env.Src.Live() && time.Now().After(deadline) {
			res.Blind = append(res.Blind, fmt.Sprintf("SMART of %d more disks (time or count budget spent)", len(devs)-i))
			break
		}
		argv := []string{"smartctl", "-a", "-j", "-n", "standby", d.Name}
		if d.Type != "" {
			argv = append(argv, "-d", d.Type)
		}
		key := "smartctl-" + reKeyUnsafe.ReplaceAllString(d.Name+"-"+d.Type, "-")
		out, err := env.Smart.command(ctx, env, key, argv...)
		if err != nil {
			res.Blind = append(res.Blind, "SMART of "+d.Name+": "+err.Error())
			continue
		}
		disk, err := storage.ParseSmartJSON(out.Stdout)
		if err != nil {
			res.Blind = append(res.Blind, "SMART of "+d.Name+": "+err.Error())
			continue
		}
		if disk.Device == "" {
			disk.Device = d.Name
		}
		if disk.Passed == nil && len(disk.Attrs) == 0 && disk.NVMe == nil {
			why := "no SMART data"
			if out.ExitCode&2 != 0 {
				why = "asleep (standby) or not answering; not woken"
			}
			res.Blind = append(res.Blind, "SMART of "+d.Name+": "+why)
			continue
		}
		read++
		if f, ok := storage.DiagnoseSmart(disk, "smartctl -a -j "+d.Name); ok {
			res.Findings = append(res.Findings, f)
		}
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "disks with healthy SMART", Value: float64(read - len(res.Findings)), Limit: float64(read), Source: "smartctl"})
	return res, nil
}

// SmartTTL is how long the agent reuses a disk's SMART reading: SMART
// attributes move over hours, and asking every disk at every cycle (15 s)
// is needless work for the disks and their controller. smartd polls every
// 30 minutes by default.
const SmartTTL = 10 * time.Minute

// SmartCache keeps smartctl's answers between the agent's diagnoses.
type SmartCache struct {
	mu  sync.Mutex
	ttl time.Duration
	out map[string]smartAnswer
}

type smartAnswer struct {
	at  time.Time
	res host.CommandResult
}

// NewSmartCache returns a cache that reuses an answer for ttl.
func NewSmartCache(ttl time.Duration) *SmartCache {
	return &SmartCache{ttl: ttl, out: map[string]smartAnswer{}}
}

// command runs smartctl through the host seam, or returns the answer of a
// run younger than the cache's TTL. A nil cache (doctor) always runs it;
// errors are never kept.
func (c *SmartCache) command(ctx context.Context, env *Env, key string, argv ...string) (host.CommandResult, error) {
	if c == nil || !env.Src.Live() {
		return env.Src.Command(ctx, key, argv...)
	}
	c.mu.Lock()
	a, ok := c.out[key]
	c.mu.Unlock()
	if ok && env.Now.Sub(a.at) < c.ttl && !env.Now.Before(a.at) {
		return a.res, nil
	}
	res, err := env.Src.Command(ctx, key, argv...)
	if err == nil {
		c.mu.Lock()
		c.out[key] = smartAnswer{at: env.Now, res: res}
		c.mu.Unlock()
	}
	return res, err
}
