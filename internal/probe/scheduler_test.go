package probe

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// In these tests time is synctest's fake clock: it moves only when every goroutine in the
// bubble is blocked, so a probe's "work" below is a wait on that clock and costs nothing.

// advance moves synctest's fake clock by d (the scheduler runs meanwhile).
func advance(d time.Duration) { <-time.After(d) }

// recorder collects deliveries and tells when n of them have arrived.
type recorder struct {
	mu    sync.Mutex
	got   []Delivery
	n     int
	reach chan struct{}
}

func newRecorder(n int) *recorder { return &recorder{n: n, reach: make(chan struct{})} }

func (r *recorder) deliver(d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d)
	if len(r.got) == r.n {
		close(r.reach)
	}
}

func (r *recorder) of(name string) []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Delivery
	for _, d := range r.got {
		if d.Spec.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// takes returns a Run that works for d of fake time (abandoned when ctx ends).
func takes(d time.Duration) func(context.Context, *Spec, *Env) Result {
	return func(ctx context.Context, s *Spec, env *Env) Result {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return Result{Status: Up, Started: env.now()}
	}
}

// start runs sched until the returned stop is called; stop waits for Run to return.
func start(t *testing.T, sched *Scheduler) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- sched.Run(ctx) }()
	return func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func httpSpec(name string, interval time.Duration) Spec {
	return Spec{Name: name, Type: HTTP, Target: "http://127.0.0.1:1/", Interval: interval, Timeout: interval / 2}
}

func TestSchedulerNoDriftOver1000Runs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		rec := newRecorder(1000)
		sched := NewScheduler(SchedulerConfig{Run: takes(3 * time.Second), Deliver: rec.deliver})
		if err := sched.Update([]Spec{httpSpec("web", interval)}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		stop := start(t, sched)
		<-rec.reach
		stop()

		got := rec.of("web")
		if len(got) != 1000 {
			t.Fatalf("got %d runs; want 1000", len(got))
		}
		first := got[0].Planned
		if first.Before(t0) || first.Sub(t0) >= interval {
			t.Errorf("first run planned %s after start; want within one interval", first.Sub(t0))
		}
		if off := time.Duration(first.UnixNano() % int64(interval)); off != jitter("web", interval) {
			t.Errorf("first slot offset %s; want the name's jitter %s", off, jitter("web", interval))
		}
		for k, d := range got {
			if want := first.Add(time.Duration(k) * interval); !d.Planned.Equal(want) || d.Late != 0 || d.Skipped != 0 {
				t.Fatalf("run %d planned %s late %s skipped %d; want %s, on time", k, d.Planned, d.Late, d.Skipped, want)
			}
		}
		st := sched.Stats()
		if st.Runs != 1000 || st.Skipped != 0 || st.LatenessP99 > 100*time.Microsecond {
			t.Errorf("stats %+v; want 1000 runs, none skipped, p99 in the first bucket", st)
		}
	})
}

func TestSchedulerJitterIsStableAndSpread(t *testing.T) {
	const interval = time.Minute
	seen := map[time.Duration]bool{}
	for i := range 200 {
		name := fmt.Sprintf("probe-%d", i)
		j := jitter(name, interval)
		if j != jitter(name, interval) || j < 0 || j >= interval {
			t.Fatalf("jitter(%q) = %s, unstable or outside [0, %s)", name, j, interval)
		}
		seen[j.Truncate(time.Second)] = true
	}
	if len(seen) < 40 {
		t.Errorf("200 probes fell on only %d distinct seconds of the minute", len(seen))
	}
	// The slot grid does not depend on when the scheduler starts.
	off := jitter("web", interval)
	for _, now := range []time.Time{time.Unix(1_800_000_000, 0), time.Unix(1_800_000_017, 5)} {
		s := firstSlot(now, interval, off)
		if s.Before(now) || s.Sub(now) >= interval || time.Duration(s.UnixNano()%int64(interval)) != off {
			t.Errorf("firstSlot(%s) = %s; want the next slot at offset %s", now, s, off)
		}
	}
}

func TestSchedulerSkipsAndCountsWhenRunsOutlastInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		rec := newRecorder(20)
		sched := NewScheduler(SchedulerConfig{Run: takes(2500 * time.Millisecond), Deliver: rec.deliver})
		if err := sched.Update([]Spec{httpSpec("slow", interval)}); err != nil {
			t.Fatal(err)
		}
		stop := start(t, sched)
		<-rec.reach
		stop()

		got := rec.of("slow")
		total := 0
		for i, d := range got {
			if d.Late < 0 || d.Late >= interval {
				t.Errorf("run %d started %s late; want less than one interval", i, d.Late)
			}
			if i > 0 {
				// Every slot between two runs is either run or counted as skipped.
				slots := d.Planned.Sub(got[i-1].Planned) / interval
				if int(slots) != 1+d.Skipped {
					t.Errorf("run %d: %d slots since the last run, %d skipped", i, slots, d.Skipped)
				}
			}
			total += d.Skipped
		}
		// The stats may hold a few more skips: those before the run abandoned at stop.
		st := sched.Stats()
		if total == 0 || st.Skipped < uint64(total) || st.Skipped > uint64(total)+3 || st.Runs != uint64(len(got)) {
			t.Errorf("stats %d runs %d skipped; deliveries %d runs %d skipped (want them to agree, > 0)",
				st.Runs, st.Skipped, len(got), total)
		}
	})
}

func TestSchedulerConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inflight, peak [2]atomic.Int32
		runFn := func(ctx context.Context, s *Spec, env *Env) Result {
			i := 0
			if s.Type == TCP {
				i = 1
			}
			n := inflight[i].Add(1)
			for {
				p := peak[i].Load()
				if n <= p || peak[i].CompareAndSwap(p, n) {
					break
				}
			}
			defer inflight[i].Add(-1)
			return takes(900*time.Millisecond)(ctx, s, env)
		}
		rec := newRecorder(200)
		sched := NewScheduler(SchedulerConfig{Run: runFn, Deliver: rec.deliver,
			Concurrency: map[Type]int{HTTP: 3, TCP: 2}})
		var specs []Spec
		for i := range 20 {
			specs = append(specs, httpSpec(fmt.Sprintf("web-%02d", i), time.Second))
		}
		for i := range 5 {
			specs = append(specs, Spec{Name: fmt.Sprintf("port-%d", i), Type: TCP, Target: "127.0.0.1:1", Interval: time.Second})
		}
		if err := sched.Update(specs); err != nil {
			t.Fatal(err)
		}
		stop := start(t, sched)
		<-rec.reach
		stop()
		if peak[0].Load() != 3 || peak[1].Load() != 2 {
			t.Errorf("peak in flight http %d tcp %d; want 3 and 2", peak[0].Load(), peak[1].Load())
		}
		// 25 probes a second against 5 slots of 0.9s: most slots cannot run, and say so.
		if st := sched.Stats(); st.Skipped == 0 {
			t.Errorf("stats %+v; want skipped runs counted", st)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, d := range rec.got {
			if d.Late >= time.Second {
				t.Errorf("%s started %s late; want less than its interval", d.Spec.Name, d.Late)
			}
		}
	})
}

func TestSchedulerUpdateKeepsUnchangedProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 5 * time.Second
		rec := newRecorder(-1)
		sched := NewScheduler(SchedulerConfig{Run: takes(time.Second), Deliver: rec.deliver})
		a, b, c := httpSpec("a", interval), httpSpec("b", interval), httpSpec("c", interval)
		if err := sched.Update([]Spec{a, b, c}); err != nil {
			t.Fatal(err)
		}
		stop := start(t, sched)
		advance(time.Minute)
		b.Conditions = []string{"[STATUS] == 204"}
		if err := sched.Update([]Spec{a, b}); err != nil { // a unchanged, b changed, c removed
			t.Fatal(err)
		}
		advance(time.Minute)
		bad := httpSpec("bad", interval)
		bad.Conditions = []string{"[STATUS] = 200"}
		err := sched.Update([]Spec{a, bad})
		if err == nil || !strings.Contains(err.Error(), `"=" is not an operator`) {
			t.Errorf("Update with a bad condition: %v", err)
		}
		if err := sched.Update([]Spec{a, a}); err == nil || !strings.Contains(err.Error(), "name used twice") {
			t.Errorf("Update with a duplicate: %v", err)
		}
		advance(time.Minute)
		stop()

		ra := rec.of("a")
		if len(ra) < 30 {
			t.Fatalf("a ran %d times in 3 minutes; want about 36", len(ra))
		}
		for i := 1; i < len(ra); i++ {
			if ra[i].Planned.Sub(ra[i-1].Planned) != interval {
				t.Fatalf("a: run %d came %s after the previous; want exactly %s across updates",
					i, ra[i].Planned.Sub(ra[i-1].Planned), interval)
			}
		}
		rb := rec.of("b")
		var changedAt int
		for i, d := range rb {
			if len(d.Spec.Conditions) > 0 && changedAt == 0 {
				changedAt = i
			}
			if i > 0 && d.Planned.Sub(rb[i-1].Planned)%interval != 0 {
				t.Errorf("b: run %d off its slot grid", i)
			}
		}
		if changedAt == 0 {
			t.Error("b never ran with its new conditions")
		}
		// A failed Update changed nothing: b kept running after it.
		if last := rb[len(rb)-1]; last.Planned.Before(ra[len(ra)-1].Planned.Add(-interval)) {
			t.Errorf("b stopped at %s, a ran until %s", last.Planned, ra[len(ra)-1].Planned)
		}
		rc := rec.of("c")
		if len(rc) == 0 || len(rc) > 13 {
			t.Errorf("c ran %d times; want it to stop after the first minute", len(rc))
		}
	})
}

func TestSchedulerStopAbandonsRunsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		var once sync.Once
		runFn := func(ctx context.Context, s *Spec, env *Env) Result {
			once.Do(func() { close(started) })
			<-ctx.Done()
			return Result{Status: Down, Error: "canceled"}
		}
		rec := newRecorder(-1)
		sched := NewScheduler(SchedulerConfig{Run: runFn, Deliver: rec.deliver})
		if err := sched.Update([]Spec{httpSpec("hang", 2*time.Second)}); err != nil {
			t.Fatal(err)
		}
		stop := start(t, sched)
		<-started
		stop()
		if n := len(rec.of("hang")); n != 0 {
			t.Errorf("%d results delivered from runs abandoned at stop; want none", n)
		}
		// A stopped scheduler can run again.
		stop = start(t, sched)
		<-time.After(3 * time.Second)
		stop()
	})
}

func TestLatenessQuantiles(t *testing.T) {
	s := NewScheduler(SchedulerConfig{})
	for range 98 {
		s.observe(time.Millisecond)
	}
	s.observe(300 * time.Millisecond)
	s.observe(2 * time.Second)
	st := s.Stats()
	if st.LatenessP50 < time.Millisecond || st.LatenessP50 > 1250*time.Microsecond {
		t.Errorf("p50 %s; want the 1ms bucket", st.LatenessP50)
	}
	if st.LatenessP99 < 300*time.Millisecond || st.LatenessP99 > 375*time.Millisecond {
		t.Errorf("p99 %s; want the 300ms bucket", st.LatenessP99)
	}
}
