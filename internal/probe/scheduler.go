package probe

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Delivery is one finished run, handed to SchedulerConfig.Deliver.
type Delivery struct {
	// Spec is the scheduler's validated copy; treat it as read-only.
	Spec *Spec
	// Planned is the slot the run belonged to; Started is when it began (after waiting for a
	// concurrency slot). Late = Started - Planned.
	Planned time.Time
	Started time.Time
	Late    time.Duration
	// Skipped counts the slots of this probe that were skipped just before this run because
	// it had fallen a whole interval behind. They are also in Stats().Skipped.
	Skipped int
	Result  Result
}

// SchedulerConfig configures a Scheduler. Only Deliver is needed.
type SchedulerConfig struct {
	// Env is passed to every run; its Now is the scheduler's clock.
	Env *Env
	// Run executes one probe; default Run. Tests replace it.
	Run func(ctx context.Context, s *Spec, env *Env) Result
	// Concurrency bounds the runs in flight per probe type; a missing or zero entry takes
	// the default (http 64, tcp 64, icmp 16, every other type 32).
	Concurrency map[Type]int
	// Deliver receives every result. It is called from the probe's own goroutine, so it
	// must be safe for concurrent use and quick: a slow Deliver delays only its own probe,
	// which then shows as late or skipped runs. Hand results to a queue, not to a notifier.
	Deliver func(Delivery)
}

// DefaultConcurrency is the bound on runs in flight for a probe type.
func DefaultConcurrency(t Type) int {
	switch t {
	case HTTP, TCP:
		return 64
	case ICMP:
		return 16
	}
	return 32
}

// Stats are the scheduler's counters since it was made.
type Stats struct {
	Probes  int    // probes scheduled now
	Runs    uint64 // runs delivered
	Skipped uint64 // slots skipped because a probe fell a whole interval behind
	// LatenessP50 and LatenessP99 are upper bounds (bucket edges, 25% apart) of how late
	// runs started after their planned slot.
	LatenessP50 time.Duration
	LatenessP99 time.Duration
	// Lateness is the histogram: Count runs started at most UpperBound late (not cumulative).
	Lateness []Bucket
}

// Bucket is one lateness histogram bucket.
type Bucket struct {
	UpperBound time.Duration
	Count      uint64
}

// Scheduler runs many probes, each on its own slots: epoch + jitter + k*interval, where the
// jitter is a hash of the probe's name within its interval. The slot of the next run is the
// last one plus the interval, never "now plus the interval", so the schedule does not
// drift. A probe that falls a whole interval behind (a slow run, a full concurrency pool)
// skips the slots it missed and counts them; it never runs a burst to catch up.
type Scheduler struct {
	cfg     SchedulerConfig
	sems    map[Type]chan struct{}
	changed chan struct{}

	mu      sync.Mutex
	desired []*Spec
	running bool
	probes  int

	runs, skipped atomic.Uint64
	bounds        []time.Duration
	hist          []atomic.Uint64
}

// NewScheduler makes a scheduler; give it probes with Update and start it with Run.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.Env == nil {
		cfg.Env = &Env{}
	}
	if cfg.Run == nil {
		cfg.Run = Run
	}
	s := &Scheduler{cfg: cfg, sems: map[Type]chan struct{}{}, changed: make(chan struct{}, 1)}
	for _, t := range Types {
		n := cfg.Concurrency[t]
		if n <= 0 {
			n = DefaultConcurrency(t)
		}
		s.sems[t] = make(chan struct{}, n)
	}
	// Buckets from 100µs, 25% apart, up to an hour; the last one catches the rest.
	for b := 100 * time.Microsecond; b < time.Hour; b = time.Duration(float64(b) * 1.25) {
		s.bounds = append(s.bounds, b)
	}
	s.bounds = append(s.bounds, math.MaxInt64)
	s.hist = make([]atomic.Uint64, len(s.bounds))
	return s
}

// Update replaces the set of probes. Each spec is copied and validated; if any is invalid or
// two share a name, nothing changes and the error says why. Probes whose configuration is
// unchanged keep running on their schedule; changed ones restart on their new one; removed
// ones stop (a run in flight is abandoned, its result not delivered).
func (s *Scheduler) Update(specs []Spec) error {
	var errs []error
	seen := map[string]bool{}
	desired := make([]*Spec, 0, len(specs))
	for i := range specs {
		c := specs[i].clone()
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("probe %q: name used twice", c.Name))
			continue
		}
		seen[c.Name] = true
		desired = append(desired, &c)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.mu.Lock()
	s.desired = desired
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return nil
}

type worker struct {
	spec   *Spec
	cancel context.CancelFunc
	done   chan struct{}
}

// Run schedules the probes until ctx is done, then stops every run and returns nil when all
// of them have ended. A Scheduler runs once at a time.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler already running")
	}
	s.running = true
	s.mu.Unlock()
	workers := map[string]*worker{}
	defer func() {
		for _, w := range workers {
			w.cancel()
		}
		for _, w := range workers {
			<-w.done
		}
		s.mu.Lock()
		s.running, s.probes = false, 0
		s.mu.Unlock()
	}()
	for {
		s.reconcile(ctx, workers)
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		}
	}
}

func (s *Scheduler) reconcile(ctx context.Context, workers map[string]*worker) {
	s.mu.Lock()
	desired := s.desired
	s.probes = len(desired)
	s.mu.Unlock()
	want := make(map[string]*Spec, len(desired))
	for _, sp := range desired {
		want[sp.Name] = sp
	}
	for name, w := range workers {
		if sp, ok := want[name]; !ok || !sameConfig(sp, w.spec) {
			w.cancel()
		}
	}
	for _, sp := range desired {
		old := workers[sp.Name]
		if old != nil && sameConfig(sp, old.spec) {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &worker{spec: sp, cancel: cancel, done: make(chan struct{})}
		workers[sp.Name] = w
		go func() {
			defer close(w.done)
			if old != nil {
				<-old.done // never two runs of one probe at once
			}
			s.loop(wctx, sp)
		}()
	}
	for name, w := range workers {
		if _, ok := want[name]; !ok {
			<-w.done
			delete(workers, name)
		}
	}
}

// jitter spreads probes over their interval, the same for a name on every start.
func jitter(name string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(interval))
}

// firstSlot is the earliest slot at or after now: Unix epoch + offset + k*interval.
func firstSlot(now time.Time, interval, offset time.Duration) time.Time {
	n := now.UnixNano() - int64(offset)
	k := n / int64(interval)
	if n%int64(interval) != 0 && n > 0 {
		k++
	}
	return time.Unix(0, k*int64(interval)+int64(offset))
}

// wakeEarly is how long before its slot a probe's timer fires; the rest is slept
// exactly (sleepExactly), in one thread's system call, so that a run starts within tens
// of microseconds of its slot instead of up to a millisecond after it. It is more than the
// runtime's timer granularity (1 ms), so the timer never fires after the slot on an idle
// process.
const wakeEarly = 1500 * time.Microsecond

func (s *Scheduler) loop(ctx context.Context, sp *Spec) {
	env := s.cfg.Env
	interval := sp.Interval
	planned := firstSlot(env.now(), interval, jitter(sp.Name, interval))
	sem := s.sems[sp.Type]
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	skipped := 0
	for {
		exact := true
		for d := planned.Sub(env.now()); d > 0; d = planned.Sub(env.now()) {
			if d <= wakeEarly && exact {
				// The runtime's timer wakes up to a millisecond late on an idle
				// process; the last stretch is slept exactly, once (a signal cuts
				// it short, and a clock that is not the machine's does not move
				// with it: the timer then waits for what is left).
				exact = false
				sleepExactly(d)
				continue
			}
			if d > wakeEarly {
				d -= wakeEarly
			}
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		started := env.now()
		if behind := started.Sub(planned); behind >= interval {
			n := behind / interval
			planned = planned.Add(n * interval)
			skipped += int(n)
			s.skipped.Add(uint64(n))
		}
		res := s.cfg.Run(ctx, sp, env)
		<-sem
		if ctx.Err() != nil {
			return // stopped or replaced: an abandoned run has no verdict
		}
		late := started.Sub(planned)
		s.observe(late)
		s.runs.Add(1)
		if s.cfg.Deliver != nil {
			s.cfg.Deliver(Delivery{Spec: sp, Planned: planned, Started: started, Late: late, Skipped: skipped, Result: res})
		}
		skipped = 0
		planned = planned.Add(interval)
	}
}

func (s *Scheduler) observe(late time.Duration) {
	for i, b := range s.bounds {
		if late <= b {
			s.hist[i].Add(1)
			return
		}
	}
}

// Stats returns the counters and the lateness histogram.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	st := Stats{Probes: s.probes}
	s.mu.Unlock()
	st.Runs, st.Skipped = s.runs.Load(), s.skipped.Load()
	var total uint64
	for i, b := range s.bounds {
		n := s.hist[i].Load()
		total += n
		st.Lateness = append(st.Lateness, Bucket{UpperBound: b, Count: n})
	}
	st.LatenessP50 = quantile(st.Lateness, total, 0.50)
	st.LatenessP99 = quantile(st.Lateness, total, 0.99)
	return st
}

func quantile(buckets []Bucket, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for _, b := range buckets {
		seen += b.Count
		if seen >= want {
			return b.UpperBound
		}
	}
	return buckets[len(buckets)-1].UpperBound
}
