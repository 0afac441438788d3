package tower

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
)

// A tower that cannot write its database (disk full, I/O errors, a
// read-only file system) cannot store reports, alerts or notifications.
// It says so instead of looking healthy: /healthz answers 503 with the
// reason, /metrics has hinomi_tower_database_writable 0, the status page
// shows a banner, peers see it in their poll and page through their own
// channels, and this tower sends a message straight to each of its channels
// (not through the outbox it cannot write). It keeps judging in memory:
// agents' batches still count as heard from (they are answered 503 and kept
// in their spools), and alerts that would fire are listed in the message,
// sent again whenever that list changes. It checks every few seconds
// whether it can write again, and says so when it can.

const (
	// storageCheck is how often an unwritable database is tried again.
	storageCheck = 5 * time.Second
	// degradedRetry is how soon a degraded message a channel refused is
	// sent again.
	degradedRetry = 30 * time.Second
)

type degradation struct {
	mu     sync.Mutex
	since  time.Time // zero while the database can be written
	reason string
	// unwritten are the alerts that would be firing had their change been
	// written, by key: title and since when.
	unwritten map[string]unwrittenAlert
	told      map[string]string // channel → the message text it accepted
	lastCheck time.Time
	lastTry   map[string]time.Time
	tried     map[string]string // channel → the content last sent to it
	sending   map[string]bool
}

type unwrittenAlert struct {
	title string
	since time.Time
}

// degradedReason is why the tower is degraded, "" when it is not.
func (t *Tower) degradedReason() (string, time.Time) {
	t.degr.mu.Lock()
	defer t.degr.mu.Unlock()
	if t.degr.since.IsZero() {
		return "", time.Time{}
	}
	why := "tower " + t.name() + " cannot write its database: " + t.degr.reason
	if t.in.spool != nil {
		why += "; it keeps the agents' reports on its own disk (" + strconv.Itoa(t.in.spool.pending()) + " batches) until it can"
	}
	return why, t.degr.since
}

// name is the tower's name in its messages: its configured name, else
// its machine's.
func (t *Tower) name() string {
	if n := t.cfg.Load().Name; n != "" {
		return n
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "(unnamed)"
}

// noteUnwritten keeps the firing alerts whose changes could not be
// written, so that the degraded message can name them.
func (t *Tower) noteUnwritten(alerts []Alert) {
	t.degr.mu.Lock()
	defer t.degr.mu.Unlock()
	if len(alerts) == 0 && len(t.degr.unwritten) == 0 {
		return
	}
	u := map[string]unwrittenAlert{}
	for _, a := range alerts {
		if a.State.Status == "firing" && a.Suppressed == "" {
			u[a.Key] = unwrittenAlert{title: a.Title, since: a.State.BadSince}
		}
	}
	t.degr.unwritten = u
}

// watchStorage is the engine's look at the database's health, each tick.
func (t *Tower) watchStorage(ctx context.Context, now time.Time) {
	_, err := t.store.Unwritable()
	t.degr.mu.Lock()
	check := err != nil && now.Sub(t.degr.lastCheck) >= storageCheck
	if check {
		t.degr.lastCheck = now
	}
	t.degr.mu.Unlock()
	if check {
		_ = t.store.Check(ctx)
		_, err = t.store.Unwritable()
	}
	t.degr.mu.Lock()
	was := t.degr.since
	switch {
	case err != nil && was.IsZero():
		t.degr.since, t.degr.reason = now, t.store.Reason(err)
		t.degr.told, t.degr.lastTry, t.degr.tried = map[string]string{}, map[string]time.Time{}, map[string]string{}
		t.degr.mu.Unlock()
		t.metrics.degraded.Set(1)
		t.log.Error("the tower cannot write its database: it judges in memory and pages through its channels until it can", "reason", t.store.Reason(err), "err", err, "data_dir", t.cfg.Load().DataDir)
	case err == nil && !was.IsZero():
		t.degr.since, t.degr.unwritten = time.Time{}, nil
		told := t.degr.told
		t.degr.told = nil
		t.degr.mu.Unlock()
		t.metrics.degraded.Set(0)
		t.log.Info("the tower can write its database again", "after", now.Sub(was).Round(time.Second))
		t.sendRecovered(was, now, told)
		return
	default:
		t.degr.mu.Unlock()
	}
	if err != nil {
		t.pageDegraded(now)
	}
}

// degradedMessage is the page about the unwritable database.
func (t *Tower) degradedMessage(now time.Time) notify.Message {
	cfg := t.cfg.Load()
	t.degr.mu.Lock()
	since, reason := t.degr.since, t.degr.reason
	var lines []string
	for key, u := range t.degr.unwritten {
		lines = append(lines, fmt.Sprintf("%s (%s) — since %s, %s ago", u.title, key, u.since.UTC().Format("15:04:05 MST"), finding.HumanDuration(now.Sub(u.since))))
	}
	t.degr.mu.Unlock()
	sort.Strings(lines)
	m := notify.Message{
		Key: "tower/" + t.name() + "/database", Host: t.name(), State: notify.Firing, Severity: "catastrophic",
		Title:   "Tower " + t.name() + " cannot write its database: " + reason,
		Started: since, Now: now, Runbook: "FM-C2",
		Summary: fmt.Sprintf("Since %s the tower cannot store reports, alerts or notifications in %s. It keeps judging in memory and sends what fires here; agents keep their reports until it can write again.",
			since.UTC().Format("2006-01-02 15:04:05 MST"), cfg.DataDir),
		Labels: map[string]string{"kind": "tower"},
	}
	if len(lines) > 0 {
		m.Details = append([]string{"Firing since the database became unwritable, judged in memory (not stored):"}, lines...)
	} else {
		m.Details = []string{"Nothing else fires now, judged in memory."}
	}
	return m
}

// pageDegraded sends the degraded message to every channel that has not
// accepted its current content yet, one send at a time per channel: a
// change is sent at once, a refused message again after degradedRetry.
func (t *Tower) pageDegraded(now time.Time) {
	m := t.degradedMessage(now)
	content := t.degradedContent()
	senders := *t.senders.Load()
	for name, s := range senders {
		t.degr.mu.Lock()
		if t.degr.sending == nil {
			t.degr.sending, t.degr.tried = map[string]bool{}, map[string]string{}
		}
		due := !t.degr.sending[name] && t.degr.told[name] != content &&
			(t.degr.tried[name] != content || now.Sub(t.degr.lastTry[name]) >= degradedRetry)
		if due {
			t.degr.sending[name], t.degr.tried[name], t.degr.lastTry[name] = true, content, now
		}
		t.degr.mu.Unlock()
		if !due {
			continue
		}
		t.dispatchW.Add(1)
		go func() {
			defer t.dispatchW.Done()
			ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
			err := s.Send(ctx, m)
			cancel()
			t.degr.mu.Lock()
			t.degr.sending[name] = false
			if err == nil && t.degr.told != nil {
				t.degr.told[name] = content
			}
			t.degr.mu.Unlock()
			if err != nil {
				t.log.Error("sending that the tower cannot write its database", "channel", name, "err", err)
			}
		}()
	}
}

// degradedContent identifies what the degraded message says, leaving out
// the durations that change every second.
func (t *Tower) degradedContent() string {
	t.degr.mu.Lock()
	defer t.degr.mu.Unlock()
	keys := []string{t.degr.reason}
	for k := range t.degr.unwritten {
		keys = append(keys, k)
	}
	sort.Strings(keys[1:])
	return strings.Join(keys, "\n")
}

// sendRecovered tells the channels that were told of the outage that it
// is over.
func (t *Tower) sendRecovered(since, now time.Time, told map[string]string) {
	m := notify.Message{
		Key: "tower/" + t.name() + "/database", Host: t.name(), State: notify.Resolved, Severity: "catastrophic",
		Title:   "Tower " + t.name() + " can write its database again",
		Started: since, Ended: now, Now: now, Runbook: "FM-C2", Condition: true,
		Summary: fmt.Sprintf("The tower could not write its database for %s (from %s); what it stores and sends is normal again, and agents are sending what they kept.",
			finding.HumanDuration(now.Sub(since)), since.UTC().Format("15:04:05 MST")),
		Labels: map[string]string{"kind": "tower"},
	}
	senders := *t.senders.Load()
	for name := range told {
		s := senders[name]
		if s == nil {
			continue
		}
		t.dispatchW.Add(1)
		go func() {
			defer t.dispatchW.Done()
			ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
			defer cancel()
			if err := s.Send(ctx, m); err != nil {
				t.log.Error("sending that the tower can write its database again", "channel", name, "err", err)
			}
		}()
	}
}
