package checks

import (
	"context"
	"fmt"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// softnetSample is one reading of the per-CPU receive backlog counters.
type softnetSample struct {
	Dropped   uint64        `json:"dropped"`
	Squeezed  uint64        `json:"time_squeezed"`
	Processed uint64        `json:"processed"`
	Interval  time.Duration `json:"interval_ns,omitempty"`
}

// SoftnetStart is the first reading of the receive backlog counters. The
// doctor takes it before the process scan so that the wait for the second
// reading overlaps the scan instead of adding to it.
type SoftnetStart struct {
	s   softnetSample
	at  time.Time
	err error
}

// StartSoftnetSample takes the first reading now.
func StartSoftnetSample(src *host.Source) *SoftnetStart {
	s, err := readSoftnet(src)
	return &SoftnetStart{s: s, at: time.Now(), err: err}
}

func readSoftnet(src *host.Source) (softnetSample, error) {
	_, _ = src.ReadFile("/proc/net/softnet_stat") // recorded for snapshots
	pfs, err := src.ProcFS()
	if err != nil {
		return softnetSample{}, err
	}
	st, err := pfs.NetSoftnetStat()
	if err != nil {
		return softnetSample{}, err
	}
	var s softnetSample
	for _, c := range st {
		s.Dropped += uint64(c.Dropped)
		s.Squeezed += uint64(c.TimeSqueezed)
		s.Processed += uint64(c.Processed)
	}
	return s, nil
}

// checkSoftnet is FM-B3: packets dropped because a CPU's receive backlog
// (net.core.netdev_max_backlog) was full. Since-boot totals say it has
// happened; a second sample, taken while the other checks run, says it is
// happening now.
func checkSoftnet(ctx context.Context, env *Env) (Result, error) {
	var res Result
	first := env.Softnet
	if first == nil {
		first = StartSoftnetSample(env.Src)
	}
	if first.err != nil {
		return res, fmt.Errorf("softnet: %w", first.err)
	}
	total := first.s
	var delta softnetSample
	// A snapshot holds the second sample if the live run took one,
	// whatever the replay's own SampleFor. A host that has never dropped
	// a packet has no rate to measure: doctor does not wait for it.
	if (env.SampleFor > 0 || !env.Src.Live()) && total.Dropped > 0 {
		err := env.Src.Probe("softnet-delta", &delta, func() error {
			t := time.NewTimer(time.Until(first.at.Add(env.SampleFor)))
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			again, err := readSoftnet(env.Src)
			if err != nil {
				return err
			}
			// The counters are 32 bits per CPU and wrap: a smaller second
			// reading means a wrap, counted as no new drops.
			delta = softnetSample{Interval: time.Since(first.at).Round(time.Millisecond)}
			if again.Dropped >= total.Dropped {
				delta.Dropped = again.Dropped - total.Dropped
			}
			if again.Processed >= total.Processed {
				delta.Processed = again.Processed - total.Processed
			}
			if again.Squeezed >= total.Squeezed {
				delta.Squeezed = again.Squeezed - total.Squeezed
			}
			return nil
		})
		if err != nil && (env.Src.Live() || !host.Missing(err)) {
			res.Blind = append(res.Blind, "receive backlog drop rate (no second sample: "+err.Error()+")")
		}
	}
	backlog, _ := readInt(env.Src, "/proc/sys/net/core/netdev_max_backlog")
	res.Headroom = append(res.Headroom, finding.Figure{Name: "receive backlog drops since boot", Value: float64(total.Dropped), Source: "/proc/net/softnet_stat"})
	if total.Dropped == 0 {
		return res, nil
	}
	vars := map[string]string{
		"dropped": itoa(int64(total.Dropped)), "netdev_max_backlog": itoa(backlog),
		"netdev_max_backlog_new": itoa(suggest(0, backlog, 4096)),
		// The softirq ran out of budget with work left: during the sample
		// when there is one, else ever since boot.
		"squeezing": yesNo(total.Squeezed > 0 && (delta.Interval == 0 || delta.Squeezed > 0)),
	}
	figs := []finding.Figure{{Name: "packets dropped since boot (backlog full)", Value: float64(total.Dropped), Source: "/proc/net/softnet_stat column 2"}}
	sev := finding.Low
	summary := fmt.Sprintf("The kernel has dropped %d received packets since boot because a CPU's backlog (net.core.netdev_max_backlog = %d) was full", total.Dropped, backlog)
	if delta.Interval > 0 {
		rate := float64(delta.Dropped) / delta.Interval.Seconds()
		figs = append(figs, finding.Figure{Name: fmt.Sprintf("drops per second (sampled over %s)", delta.Interval), Value: rate, Source: "two readings of /proc/net/softnet_stat"})
		if delta.Dropped > 0 {
			sev = finding.High
			summary += fmt.Sprintf(", and is dropping %.0f per second now", rate)
		} else {
			summary += fmt.Sprintf("; none in a %s sample now", delta.Interval)
		}
	}
	res.Findings = append(res.Findings, finding.Finding{
		Mode: "FM-B3", Severity: sev, Subject: "softnet backlog",
		Summary:  summary + ".",
		Evidence: finding.Evidence{Figures: figs, Vars: vars},
	})
	return res, nil
}
