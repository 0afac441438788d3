package alerting

import (
	"fmt"
	"testing"
	"time"
)

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	rule := Rule{For: time.Minute, RepeatInterval: time.Hour}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	bad := func(since time.Duration) Observation { return Observation{Bad: true, BadSince: at(since)} }
	good := Observation{}
	steps := []struct {
		obs    Observation
		now    time.Duration
		status Status
		event  Event
	}{
		{good, 0, "", None},
		{bad(10 * time.Second), 20 * time.Second, Pending, None},
		{bad(10 * time.Second), 69 * time.Second, Pending, None},
		{bad(10 * time.Second), 70 * time.Second, Firing, Fire},
		{bad(10 * time.Second), 30 * time.Minute, Firing, None},
		{bad(10 * time.Second), 70*time.Second + time.Hour, Firing, Repeat},
		{good, 2 * time.Hour, Resolved, Resolve},
		{good, 3 * time.Hour, Resolved, None},
		{bad(4 * time.Hour), 4 * time.Hour, Pending, None},
		{good, 4*time.Hour + time.Second, OK, Cancelled}, // a blip shorter than For never fires
	}
	var s State
	for i, st := range steps {
		var ev Event
		s, ev = Step(s, st.obs, at(st.now), rule)
		if s.Status != st.status || ev != st.event {
			t.Fatalf("step %d at +%s: %s/%q, want %s/%q", i, st.now, s.Status, ev, st.status, st.event)
		}
		if i == 6 {
			if got := s.Downtime(at(5 * time.Hour)); got != 2*time.Hour-10*time.Second {
				t.Errorf("downtime %s, want 1h59m50s", got)
			}
			if s.Notifications != 2 {
				t.Errorf("notifications %d, want 2", s.Notifications)
			}
		}
	}
}

func TestStepFiresAtOnceWhenAlreadyLongBad(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	// The tower learns of a problem that started an hour ago: it fires now
	// and keeps the real start.
	s, ev := Step(State{}, Observation{Bad: true, BadSince: t0.Add(-time.Hour)}, t0, Rule{For: time.Minute})
	if ev != Fire || !s.BadSince.Equal(t0.Add(-time.Hour)) {
		t.Errorf("got %s since %v", ev, s.BadSince)
	}
	// A start in the future (clock skew) is taken as now.
	s, _ = Step(State{}, Observation{Bad: true, BadSince: t0.Add(time.Hour)}, t0, Rule{For: time.Minute})
	if !s.BadSince.Equal(t0) {
		t.Errorf("future start kept: %v", s.BadSince)
	}
}

// TestFlapping: bad spells shorter than For never page; the fourth spell in
// an hour reports flapping once; more spells say nothing; it is stable
// again after 30 min good; a long spell while flapping is a real outage.
func TestFlapping(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	rule := Rule{For: time.Minute, Flap: FlapRule{Window: time.Hour, Spells: 4, Stable: 30 * time.Minute}}
	var s State
	var events []Event
	step := func(bad bool, at time.Duration) {
		var ev Event
		s, ev = Step(s, Observation{Bad: bad, BadSince: t0.Add(at)}, t0.Add(at), rule)
		if ev != None {
			events = append(events, ev)
		}
	}
	// Six 40-second blips, ten minutes apart.
	for i := range 6 {
		start := time.Duration(i) * 10 * time.Minute
		step(true, start)
		step(true, start+30*time.Second)
		step(false, start+40*time.Second)
	}
	want := []Event{Cancelled, Cancelled, Cancelled, FlapStart, Cancelled, Cancelled, Cancelled}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	if got := s.BlipSummary(); got != "6 blips of 40s in the last 7 days" {
		t.Errorf("summary %q", got)
	}
	events = nil
	step(false, 50*time.Minute+40*time.Second+29*time.Minute)
	step(false, 50*time.Minute+40*time.Second+30*time.Minute)
	if fmt.Sprint(events) != fmt.Sprint([]Event{FlapEnd}) || s.Flapping {
		t.Fatalf("after 30 min stable: %v flapping=%v", events, s.Flapping)
	}
	// The episode is the six spells from the first: 4 min of 40 s.
	e, ok := s.FlapEpisode()
	want6 := Episode{Spells: 6, First: t0, Last: t0.Add(50 * time.Minute), Down: 4 * time.Minute, StableSince: t0.Add(50*time.Minute + 40*time.Second)}
	if !ok || e != want6 {
		t.Errorf("episode %+v, want %+v", e, want6)
	}

	// Flapping again, then a spell that lasts: it fires once, as an outage.
	s, events = State{}, nil
	for i := range 4 {
		start := time.Duration(i) * 5 * time.Minute
		step(true, start)
		step(false, start+10*time.Second)
	}
	step(true, 30*time.Minute)
	step(true, 40*time.Minute)
	step(true, 61*time.Minute)
	if fmt.Sprint(events) != fmt.Sprint([]Event{Cancelled, Cancelled, Cancelled, FlapStart, Cancelled, Fire}) {
		t.Fatalf("events %v", events)
	}
	if s.Flapping || s.Status != Firing || !s.BadSince.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("state %+v", s)
	}
}
