package tower

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/notify"
)

// Delivery: one goroutine per channel works through that channel's due
// outbox rows in order, so a receiver that hangs only holds up itself.
// A row is marked delivered after the receiver accepted it; a crash between
// the two would send it again on restart (each message carries its key and
// outbox id so receivers can tell). On shutdown the in-flight send is let
// finish so a clean restart never repeats a message.
//
// When the outcome of a send cannot be written (the disk is full), the
// channel keeps it in memory and stops: it neither sends the row again nor
// anything after it (that would break the order per alert) until the
// outcome is written, retried on the same backoff schedule as a failed
// send. Only a restart before then sends the row again.

// dispatcher delivers the outbox. It shares the tower's store, clock,
// configuration, channels and metrics, and nothing else: the tower queues
// messages (Store.SaveAlerts) and wakes it.
type dispatcher struct {
	store   Store
	log     *slog.Logger
	now     func() time.Time
	cfg     *atomic.Pointer[Config]
	senders *atomic.Pointer[map[string]notify.Sender]
	metrics *metrics
	// leads says whether this tower may send now (it leads).
	leads func() bool

	wakeMu      sync.Mutex
	wakers      []chan struct{} // one per channel
	dispatching map[string]bool
	unrecMu     sync.Mutex
	unrec       map[string]*unrecorded // send outcomes not yet written, by channel
	wg          sync.WaitGroup         // the channels' goroutines
}

const (
	sendTimeout = 10 * time.Second
	maxBackoff  = 5 * time.Minute
)

func (d *dispatcher) start(ctx context.Context) {
	d.wakeMu.Lock()
	defer d.wakeMu.Unlock()
	if d.dispatching == nil {
		d.dispatching = map[string]bool{}
	}
	for _, ch := range d.cfg.Load().Channels {
		if d.dispatching[ch.Name] {
			continue // already has its goroutine (a reload keeps it)
		}
		d.dispatching[ch.Name] = true
		wake := make(chan struct{}, 1)
		d.wakers = append(d.wakers, wake)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.dispatch(ctx, ch.Name, wake)
		}()
	}
}

// wakeDispatchers tells every channel's goroutine that rows are due.
func (d *dispatcher) wake() {
	d.wakeMu.Lock()
	defer d.wakeMu.Unlock()
	for _, w := range d.wakers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

func (d *dispatcher) dispatch(ctx context.Context, channel string, wake <-chan struct{}) {
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	for {
		for {
			sent, err := d.sendNext(ctx, channel)
			if err != nil && ctx.Err() == nil {
				d.log.Error("outbox", "channel", channel, "err", err)
			}
			if !sent || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-wake:
		}
	}
}

// fallbackAfter is how many failed attempts hand a message to the route's
// fallback channels (while the channel keeps retrying).
const fallbackAfter = 5

// sendNext sends the channel's oldest due message, if any; it reports
// whether it tried one.
func (d *dispatcher) sendNext(ctx context.Context, channel string) (bool, error) {
	senders := *d.senders.Load()
	s := senders[channel]
	if s == nil {
		return false, nil // channel removed by a reload
	}
	now := d.now()
	if held, err := d.flushUnrecorded(channel, now); held {
		return false, err
	}
	if d.leads != nil && !d.leads() {
		return false, nil
	}
	row, ok, err := d.store.NextDue(ctx, channel, now)
	if !ok || err != nil {
		return false, err
	}
	if row.BadMsg != nil {
		return d.record(channel, now, now, CloseRows{IDs: []int64{row.ID}, State: "failed", At: now, Error: "stored message unreadable: " + row.BadMsg.Error()})
	}
	if row.Group != "" && row.Attempts == 0 {
		if err := d.mergeGroup(ctx, channel, &row, now); err != nil {
			return false, err
		}
	}
	// A message sent late says how late, with its durations as of now.
	if delay := now.Sub(row.Created); row.Group == "" && (row.Attempts > 0 || delay > lateAfter) {
		row.Msg.Now, row.Msg.Delayed = now, delay
	}
	// The closing writes: this row, and the rows a RESOLVED folded in.
	closing := []int64{row.ID}
	if row.Group == "" && row.Msg.State != notify.Resolved {
		folded, err := d.foldOvertaken(ctx, channel, &row, row.Created, now)
		if err != nil {
			return false, err
		}
		closing = append(closing, folded...)
	}
	sentID := closing[len(closing)-1]
	if row.Msg.Labels == nil {
		row.Msg.Labels = map[string]string{}
	}
	row.Msg.Labels["outbox_id"] = strconv.FormatInt(sentID, 10)
	// The send gets its own deadline and is not cancelled by shutdown:
	// a message half-sent at exit would be sent again.
	sctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	start := time.Now()
	err = s.Send(sctx, row.Msg)
	cancel()
	d.metrics.sendSeconds.WithLabelValues(channel).Observe(time.Since(start).Seconds())
	if err == nil {
		d.metrics.sends.WithLabelValues(channel, "delivered").Inc()
		end := d.now()
		return d.record(channel, end, end, CloseRows{IDs: closing, State: "delivered", Attempts: row.Attempts + 1, At: end})
	}
	if !notify.Retryable(err) {
		d.metrics.sends.WithLabelValues(channel, "failed").Inc()
		d.log.Error("notification failed for good", "channel", channel, "alert", row.Msg.Key, "err", err)
		end := d.now()
		return d.record(channel, end, end, d.fallbackOp(row, channel, err, end), CloseRows{IDs: closing, State: "failed", Attempts: row.Attempts + 1, At: end, Error: err.Error()})
	}
	var fallback OutboxOp
	if row.Attempts+1 >= fallbackAfter {
		fallback = d.fallbackOp(row, channel, err, d.now())
	}
	d.metrics.sends.WithLabelValues(channel, "retry").Inc()
	backoff := time.Second << min(row.Attempts, 12)
	backoff = min(backoff, maxBackoff)
	if ra := notify.RetryAfter(err); ra > backoff {
		backoff = min(ra, time.Hour)
	}
	next := d.now().Add(backoff)
	d.log.Warn("notification will be retried", "channel", channel, "alert", row.Msg.Key, "attempt", row.Attempts+1, "in", backoff, "err", err)
	_, werr := d.record(channel, d.now(), next, fallback, RetryRow{ID: row.ID, Next: next, Error: err.Error()})
	// Not "sent": wait for the next poll before trying this channel again.
	return false, werr
}

// unrecorded is a channel's send outcomes that could not be written yet,
// oldest first, and when to try writing them again.
type unrecorded struct {
	writes   []OutboxOp
	retry    time.Time
	failures int
}

// record writes the outcome of a send (fns, in one transaction; nil ones
// are skipped). If that fails, the outcome is kept in memory and the
// channel holds until it is written (flushUnrecorded), and no earlier than
// due, the time the row itself would next be due. It reports whether the
// channel may go on at once.
func (d *dispatcher) record(channel string, now, due time.Time, ops ...OutboxOp) (bool, error) {
	ops = slices.DeleteFunc(ops, func(op OutboxOp) bool { return op == nil })
	err := d.store.RecordOutbox(context.Background(), ops)
	if err == nil {
		if slices.ContainsFunc(ops, func(op OutboxOp) bool { _, ok := op.(QueueFallback); return ok }) {
			d.wake() // a fallback was queued
		}
		return true, nil
	}
	d.unrecMu.Lock()
	defer d.unrecMu.Unlock()
	if d.unrec == nil {
		d.unrec = map[string]*unrecorded{}
	}
	u := d.unrec[channel]
	if u == nil {
		u = &unrecorded{}
		d.unrec[channel] = u
	}
	u.writes = append(u.writes, ops...)
	u.failures++
	u.retry = later(now.Add(recordBackoff(u.failures)), due)
	return false, fmt.Errorf("recording a notification's outcome (kept in memory, retried in %s): %w", u.retry.Sub(now).Round(time.Millisecond), err)
}

// flushUnrecorded writes the channel's unrecorded outcomes when their
// retry is due; it reports whether the channel must still hold.
func (d *dispatcher) flushUnrecorded(channel string, now time.Time) (bool, error) {
	d.unrecMu.Lock()
	defer d.unrecMu.Unlock()
	u := d.unrec[channel]
	if u == nil || len(u.writes) == 0 {
		return false, nil
	}
	if now.Before(u.retry) {
		return true, nil
	}
	writes := u.writes
	err := d.store.RecordOutbox(context.Background(), writes)
	if err != nil {
		u.failures++
		u.retry = now.Add(recordBackoff(u.failures))
		return true, fmt.Errorf("recording %d notification outcomes (kept in memory, retried in %s): %w", len(writes), u.retry.Sub(now).Round(time.Millisecond), err)
	}
	delete(d.unrec, channel)
	d.wake()
	return false, nil
}

// recordBackoff is the wait before writing an outcome again after n
// failures: the failed-send schedule, but capped lower, since a database
// that can be written again should hear of it soon.
func recordBackoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 12), 30*time.Second)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// mergeGroup folds the other due messages of the row's group (same
// channel, host and state) into the row: twenty findings of one host in one
// minute become one message listing them.
func (d *dispatcher) mergeGroup(ctx context.Context, channel string, row *OutboxRow, now time.Time) error {
	// Everything queued for the group so far goes with the first one, even
	// if its own wait has not ended: that is what the wait was for.
	others, err := d.store.DueInGroup(ctx, channel, row.Group, row.ID, now)
	if err != nil || len(others) == 0 {
		return err
	}
	ids := make([]int64, 0, len(others))
	msgs := []notify.Message{row.Msg}
	for _, o := range others {
		ids = append(ids, o.ID)
		msgs = append(msgs, *o.Msg)
	}
	row.Msg = groupMessage(msgs, now)
	return d.store.MergeGroup(ctx, row.ID, row.Msg, ids)
}

// groupMessage is one message for several about the same host and state.
func groupMessage(ms []notify.Message, now time.Time) notify.Message {
	sevRank := map[string]int{"info": 1, "low": 2, "medium": 3, "high": 4, "catastrophic": 5}
	g := notify.Message{Key: "group/" + ms[0].Host, Host: ms[0].Host, State: ms[0].State, Now: now,
		Labels: map[string]string{"grouped": strconv.Itoa(len(ms))}, Condition: true}
	for _, m := range ms {
		g.Condition = g.Condition && m.Condition
	}
	for _, m := range ms {
		if sevRank[m.Severity] > sevRank[g.Severity] {
			g.Severity = m.Severity
		}
		if g.Started.IsZero() || m.Started.Before(g.Started) {
			g.Started = m.Started
		}
		if m.Ended.After(g.Ended) {
			g.Ended = m.Ended
		}
		line := fmt.Sprintf("[%s] %s — since %s", strings.ToUpper(m.Severity), m.Title, m.Started.UTC().Format("2006-01-02 15:04:05 MST"))
		if !m.Ended.IsZero() {
			line += fmt.Sprintf(", ended %s (%s)", m.Ended.UTC().Format("15:04:05 MST"), finding.HumanDuration(m.Ended.Sub(m.Started)))
		}
		g.Details = append(g.Details, line)
	}
	what := "problems"
	if g.State == notify.Resolved {
		what = "problems resolved"
	}
	g.Title = fmt.Sprintf("%d %s on %s", len(ms), what, g.Host)
	g.Summary = fmt.Sprintf("%d alerts about %s within the grouping window; each is listed below.", len(ms), g.Host)
	return g
}

// fallbackOp is the write that queues the message once for the route's
// fallback channels, saying which channel could not deliver it (nil when
// there is nothing to queue).
func (d *dispatcher) fallbackOp(row OutboxRow, channel string, cause error, now time.Time) OutboxOp {
	if len(row.Fallback) == 0 || row.FallbackSent {
		return nil
	}
	m := row.Msg
	m.Details = append([]string{fmt.Sprintf("Sent here because channel %q could not deliver it: %v", channel, cause)}, m.Details...)
	var chans []string
	for _, c := range row.Fallback {
		if c != channel {
			chans = append(chans, c)
		}
	}
	return QueueFallback{ID: row.ID, Msg: outMsg{msg: &m, channels: chans}.enqueue(m.Key, now)}
}

// lateAfter is how long after it was queued a message counts as late even
// without a failed attempt (held up behind its alert's earlier ones).
const lateAfter = 10 * time.Second

// foldOvertaken looks for a RESOLVED of the row's alert queued after it
// and still undelivered. If there is one, the alert is over before its
// FIRING (or reminder) went out: the row's message becomes that RESOLVED,
// saying so, and the ids of the later rows it stands for are returned
// (the RESOLVED's last). Sending both, minutes late, would page for
// something already over.
func (d *dispatcher) foldOvertaken(ctx context.Context, channel string, row *OutboxRow, queued, now time.Time) ([]int64, error) {
	later, err := d.store.DueAfter(ctx, channel, row.ID)
	if err != nil {
		return nil, err
	}
	var ids, upTo []int64
	var resolved *notify.Message
	for _, l := range later {
		ids = append(ids, l.ID)
		if l.Msg != nil && l.Msg.State == notify.Resolved {
			resolved, upTo = l.Msg, slices.Clone(ids)
		}
	}
	if resolved == nil {
		return nil, nil
	}
	first := row.Msg
	resolved.Now, resolved.Overtook = now, true
	if resolved.Started.IsZero() {
		resolved.Started = first.Started
	}
	if row.Attempts > 0 || now.Sub(queued) > lateAfter {
		resolved.Delayed = now.Sub(queued)
	}
	row.Msg = *resolved
	return upTo, nil
}
