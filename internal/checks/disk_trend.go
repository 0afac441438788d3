package checks

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
)

// DiskTrend is what a long-running agent remembers of each filesystem
// between its cycles: its use at each of its last cycles, from which the
// disk check predicts when it is full, and the sizes of what is on it
// (containers' layers and logs, volumes, the directories sized when it
// fills), from which it names the fastest grower. Memory is bounded: at
// most trendMounts filesystems, trendSamples uses and trendConsumers
// consumers each, and nothing older than trendWindow.
type DiskTrend struct {
	mu sync.Mutex
	fs map[string]*fsTrend
}

const (
	trendMounts    = 64
	trendSamples   = 64
	trendConsumers = 64
	trendWindow    = time.Hour
	// trendMinSamples is how many cycles' uses a prediction needs.
	trendMinSamples = 4
)

type fsTrend struct {
	samples   []trendSample // oldest first
	consumers map[string]*grower
	seen      time.Time
	// filling counts the cycles in a row predicted full within a day.
	filling int
}

type trendSample struct {
	at          time.Time
	used, avail float64
}

// grower is one consumer's size when first and last seen within the
// window.
type grower struct {
	kind            string
	firstAt, lastAt time.Time
	first, last     float64
}

// NewDiskTrend returns an empty memory; the disk check fills it.
func NewDiskTrend() *DiskTrend { return &DiskTrend{fs: map[string]*fsTrend{}} }

// diskPrediction is a filesystem's fill rate over its recent cycles.
type diskPrediction struct {
	rate   float64       // bytes per second (least squares over the samples)
	span   time.Duration // from the oldest sample used to now
	n      int
	toFull time.Duration // 0 when the filesystem is not filling
	at     time.Time     // when it is full
	// cycles is how many cycles in a row predicted it full within a day.
	cycles int
}

// trendSeverity ranks a predicted fill: full within the hour is high,
// within 6 hours medium, within a day low (Zabbix's default "disk will be
// full in less than 24 hours" trigger starts there).
func (p *diskPrediction) severity() finding.Severity {
	switch {
	case p == nil || p.toFull <= 0:
		return 0
	case p.toFull < time.Hour:
		return finding.High
	case p.toFull < 6*time.Hour:
		return finding.Medium
	case p.toFull < 24*time.Hour:
		return finding.Low
	}
	return 0
}

// observe records a filesystem's use at now and returns the prediction
// from the samples within the window, nil when there are too few or it
// is not filling.
func (d *DiskTrend) observe(mount string, now time.Time, used, avail float64) *diskPrediction {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.get(mount, now)
	if n := len(t.samples); n > 0 && !now.After(t.samples[n-1].at) {
		t.samples = t.samples[:0] // the clock went back: start again
	}
	t.samples = append(t.samples, trendSample{now, used, avail})
	drop := 0
	for drop < len(t.samples) && (now.Sub(t.samples[drop].at) > trendWindow || len(t.samples)-drop > trendSamples) {
		drop++
	}
	t.samples = append(t.samples[:0], t.samples[drop:]...)
	if len(t.samples) < trendMinSamples {
		t.filling = 0
		return nil
	}
	// Least squares slope of use over time.
	var st, su float64
	t0 := t.samples[0].at
	for _, s := range t.samples {
		st += s.at.Sub(t0).Seconds()
		su += s.used
	}
	n := float64(len(t.samples))
	mt, mu := st/n, su/n
	var num, den float64
	for _, s := range t.samples {
		x := s.at.Sub(t0).Seconds() - mt
		num += x * (s.used - mu)
		den += x * x
	}
	if den == 0 {
		t.filling = 0
		return nil
	}
	p := &diskPrediction{rate: num / den, span: now.Sub(t0), n: len(t.samples)}
	if p.rate > 0 && avail > 0 && used > t.samples[0].used {
		p.toFull = time.Duration(avail / p.rate * float64(time.Second))
		p.at = now.Add(p.toFull)
	}
	if p.severity() > 0 {
		t.filling++
	} else {
		t.filling = 0
	}
	p.cycles = t.filling
	return p
}

func (d *DiskTrend) get(mount string, now time.Time) *fsTrend {
	t := d.fs[mount]
	if t == nil {
		// Forget filesystems unmounted for a window, then the oldest
		// seen, to stay within trendMounts.
		for m, x := range d.fs {
			if now.Sub(x.seen) > trendWindow {
				delete(d.fs, m)
			}
		}
		for len(d.fs) >= trendMounts {
			oldest := ""
			for m, x := range d.fs {
				if oldest == "" || x.seen.Before(d.fs[oldest].seen) {
					oldest = m
				}
			}
			delete(d.fs, oldest)
		}
		t = &fsTrend{consumers: map[string]*grower{}}
		d.fs[mount] = t
	}
	t.seen = now
	return t
}

// grow records the sizes of the consumers on a filesystem at now and
// returns the one that grew fastest over the window, with its rate in
// bytes per second; ok is false when none grew.
func (d *DiskTrend) grow(mount string, now time.Time, cs []finding.Consumer) (top finding.Consumer, rate float64, since time.Duration, ok bool) {
	if d == nil {
		return top, 0, 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.get(mount, now)
	seen := map[string]bool{}
	for _, c := range cs {
		if c.Unit != "bytes" || seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		g := t.consumers[c.Name]
		switch {
		case g == nil:
			g = &grower{kind: c.Kind, firstAt: now, first: c.Value}
			t.consumers[c.Name] = g
		case now.Sub(g.firstAt) > trendWindow:
			// Slide the window: the last size becomes the first.
			g.firstAt, g.first = g.lastAt, g.last
		}
		g.lastAt, g.last = now, c.Value
	}
	// Keep only what was seen now, the biggest first, within bounds.
	names := make([]string, 0, len(t.consumers))
	for name := range t.consumers {
		if !seen[name] {
			delete(t.consumers, name)
			continue
		}
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return t.consumers[names[i]].last > t.consumers[names[j]].last })
	for _, name := range names[min(trendConsumers, len(names)):] {
		delete(t.consumers, name)
	}
	for name, g := range t.consumers {
		span := g.lastAt.Sub(g.firstAt)
		if span <= 0 || g.last <= g.first {
			continue
		}
		r := (g.last - g.first) / span.Seconds()
		if r > rate || (r == rate && name < top.Name) {
			top, rate, since, ok = finding.Consumer{Kind: g.kind, Name: name, Value: g.last, Unit: "bytes"}, r, span, true
		}
	}
	return top, rate, since, ok
}

// humanRate writes a rate in bytes per second per hour: "1.2 GiB/h".
func humanRate(perSecond float64) string {
	return finding.HumanBytes(perSecond*3600) + "/h"
}

// predictionSentence says when the filesystem is full and what grows
// fastest.
func predictionSentence(p *diskPrediction, grower *finding.Consumer, growRate float64, growSpan time.Duration) string {
	s := ""
	if p != nil && p.toFull > 0 {
		s = fmt.Sprintf(" At its rate over the last %s (%d samples, +%s) it is full in %s, at %s.",
			finding.HumanDuration(p.span), p.n, humanRate(p.rate), finding.HumanDuration(p.toFull), p.at.UTC().Format("2006-01-02 15:04 MST"))
	}
	if grower != nil {
		s += fmt.Sprintf(" The fastest grower is %s %s: +%s over the last %s, now %s.",
			grower.Kind, grower.Name, humanRate(growRate), finding.HumanDuration(growSpan), finding.HumanBytes(grower.Value))
	}
	return s
}
