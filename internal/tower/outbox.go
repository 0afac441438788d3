package tower

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

const (
	sendTimeout = 10 * time.Second
	maxBackoff  = 5 * time.Minute
)

func (t *Tower) startDispatchers(ctx context.Context) {
	t.wakeMu.Lock()
	defer t.wakeMu.Unlock()
	if t.dispatching == nil {
		t.dispatching = map[string]bool{}
	}
	for _, ch := range t.cfg.Load().Channels {
		if t.dispatching[ch.Name] {
			continue // already has its goroutine (a reload keeps it)
		}
		t.dispatching[ch.Name] = true
		wake := make(chan struct{}, 1)
		t.wakers = append(t.wakers, wake)
		t.dispatchW.Add(1)
		go func() {
			defer t.dispatchW.Done()
			t.dispatch(ctx, ch.Name, wake)
		}()
	}
}

// wakeDispatchers tells every channel's goroutine that rows are due.
func (t *Tower) wakeDispatchers() {
	t.wakeMu.Lock()
	defer t.wakeMu.Unlock()
	for _, w := range t.wakers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

func (t *Tower) dispatch(ctx context.Context, channel string, wake <-chan struct{}) {
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	for {
		for {
			sent, err := t.sendNext(ctx, channel)
			if err != nil && ctx.Err() == nil {
				t.log.Error("outbox", "channel", channel, "err", err)
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

type outboxRow struct {
	id           int64
	attempts     int
	msg          notify.Message
	fallback     string
	fallbackSent bool
	group        string
}

// fallbackAfter is how many failed attempts hand a message to the route's
// fallback channels (while the channel keeps retrying).
const fallbackAfter = 5

// sendNext sends the channel's oldest due message, if any; it reports
// whether it tried one.
func (t *Tower) sendNext(ctx context.Context, channel string) (bool, error) {
	senders := *t.senders.Load()
	s := senders[channel]
	if s == nil {
		return false, nil // channel removed by a reload
	}
	now := t.now()
	if held, err := t.flushUnrecorded(channel, now); held {
		return false, err
	}
	var row outboxRow
	var raw []byte
	err := t.store.DB.QueryRowContext(ctx, `SELECT id, attempts, message, fallback, fallback_sent, group_key FROM outbox
		WHERE channel = ? AND state = 'due' AND next_attempt <= ? ORDER BY id LIMIT 1`, channel, now.UnixNano()).
		Scan(&row.id, &row.attempts, &raw, &row.fallback, &row.fallbackSent, &row.group)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, &row.msg); err != nil {
		return t.record(channel, now, now, t.finishFn(row.id, "failed", 0, now, "stored message unreadable: "+err.Error()))
	}
	if row.group != "" && row.attempts == 0 {
		if err := t.mergeGroup(ctx, channel, &row, now); err != nil {
			return false, err
		}
	}
	if row.msg.Labels == nil {
		row.msg.Labels = map[string]string{}
	}
	row.msg.Labels["outbox_id"] = strconv.FormatInt(row.id, 10)
	// The send gets its own deadline and is not cancelled by shutdown:
	// a message half-sent at exit would be sent again.
	sctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	start := time.Now()
	err = s.Send(sctx, row.msg)
	cancel()
	t.metrics.sendSeconds.WithLabelValues(channel).Observe(time.Since(start).Seconds())
	if err == nil {
		t.metrics.sends.WithLabelValues(channel, "delivered").Inc()
		end := t.now()
		return t.record(channel, end, end, t.finishFn(row.id, "delivered", row.attempts+1, end, ""))
	}
	if !notify.Retryable(err) {
		t.metrics.sends.WithLabelValues(channel, "failed").Inc()
		t.log.Error("notification failed for good", "channel", channel, "alert", row.msg.Key, "err", err)
		end := t.now()
		return t.record(channel, end, end, t.fallbackFn(row, channel, err, end), t.finishFn(row.id, "failed", row.attempts+1, end, err.Error()))
	}
	var fallback func(*sql.Tx) error
	if row.attempts+1 >= fallbackAfter {
		fallback = t.fallbackFn(row, channel, err, t.now())
	}
	t.metrics.sends.WithLabelValues(channel, "retry").Inc()
	backoff := time.Second << min(row.attempts, 12)
	backoff = min(backoff, maxBackoff)
	if ra := notify.RetryAfter(err); ra > backoff {
		backoff = min(ra, time.Hour)
	}
	next := t.now().Add(backoff)
	t.log.Warn("notification will be retried", "channel", channel, "alert", row.msg.Key, "attempt", row.attempts+1, "in", backoff, "err", err)
	errText := err.Error()
	_, werr := t.record(channel, t.now(), next, fallback, func(tx *sql.Tx) error {
		_, err := tx.Exec("UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?", next.UnixNano(), errText, row.id)
		return err
	})
	// Not "sent": wait for the next poll before trying this channel again.
	return false, werr
}

// unrecorded is a channel's send outcomes that could not be written yet,
// oldest first, and when to try writing them again.
type unrecorded struct {
	writes   []func(*sql.Tx) error
	retry    time.Time
	failures int
}

// record writes the outcome of a send (fns, in one transaction; nil ones
// are skipped). If that fails, the outcome is kept in memory and the
// channel holds until it is written (flushUnrecorded), and no earlier than
// due, the time the row itself would next be due. It reports whether the
// channel may go on at once.
func (t *Tower) record(channel string, now, due time.Time, fns ...func(*sql.Tx) error) (bool, error) {
	fn := func(tx *sql.Tx) error {
		for _, f := range fns {
			if f == nil {
				continue
			}
			if err := f(tx); err != nil {
				return err
			}
		}
		return nil
	}
	err := t.store.Write(context.Background(), fn)
	if err == nil {
		for _, f := range fns[:len(fns)-1] {
			if f != nil {
				t.wakeDispatchers() // a fallback was queued
				break
			}
		}
		return true, nil
	}
	t.unrecMu.Lock()
	defer t.unrecMu.Unlock()
	if t.unrec == nil {
		t.unrec = map[string]*unrecorded{}
	}
	u := t.unrec[channel]
	if u == nil {
		u = &unrecorded{}
		t.unrec[channel] = u
	}
	u.writes = append(u.writes, fn)
	u.failures++
	u.retry = later(now.Add(recordBackoff(u.failures)), due)
	return false, fmt.Errorf("recording a notification's outcome (kept in memory, retried in %s): %w", u.retry.Sub(now).Round(time.Millisecond), err)
}

// flushUnrecorded writes the channel's unrecorded outcomes when their
// retry is due; it reports whether the channel must still hold.
func (t *Tower) flushUnrecorded(channel string, now time.Time) (bool, error) {
	t.unrecMu.Lock()
	defer t.unrecMu.Unlock()
	u := t.unrec[channel]
	if u == nil || len(u.writes) == 0 {
		return false, nil
	}
	if now.Before(u.retry) {
		return true, nil
	}
	writes := u.writes
	err := t.store.Write(context.Background(), func(tx *sql.Tx) error {
		for _, fn := range writes {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		u.failures++
		u.retry = now.Add(recordBackoff(u.failures))
		return true, fmt.Errorf("recording %d notification outcomes (kept in memory, retried in %s): %w", len(writes), u.retry.Sub(now).Round(time.Millisecond), err)
	}
	delete(t.unrec, channel)
	t.wakeDispatchers()
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
func (t *Tower) mergeGroup(ctx context.Context, channel string, row *outboxRow, now time.Time) error {
	// Everything queued for the group so far goes with the first one, even
	// if its own wait has not ended: that is what the wait was for.
	rows, err := t.store.DB.QueryContext(ctx, `SELECT id, message FROM outbox WHERE channel = ? AND state = 'due'
		AND group_key = ? AND attempts = 0 AND id != ? AND created <= ? ORDER BY id`, channel, row.group, row.id, now.UnixNano())
	if err != nil {
		return err
	}
	var ids []int64
	msgs := []notify.Message{row.msg}
	for rows.Next() {
		var id int64
		var raw []byte
		var m notify.Message
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return err
		}
		if json.Unmarshal(raw, &m) == nil {
			ids = append(ids, id)
			msgs = append(msgs, m)
		}
	}
	rows.Close()
	if len(ids) == 0 {
		return nil
	}
	row.msg = groupMessage(msgs, now)
	merged, _ := json.Marshal(row.msg)
	return t.store.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE outbox SET message = ? WHERE id = ?", merged, row.id); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.Exec("UPDATE outbox SET state = 'merged', delivered = ? WHERE id = ?", row.id, id); err != nil {
				return err
			}
		}
		return nil
	})
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

// fallbackFn is the write that queues the message once for the route's
// fallback channels, saying which channel could not deliver it (nil when
// there is nothing to queue).
func (t *Tower) fallbackFn(row outboxRow, channel string, cause error, now time.Time) func(*sql.Tx) error {
	if row.fallback == "" || row.fallbackSent {
		return nil
	}
	m := row.msg
	m.Details = append([]string{fmt.Sprintf("Sent here because channel %q could not deliver it: %v", channel, cause)}, m.Details...)
	var chans []string
	for _, c := range strings.Split(row.fallback, ",") {
		if c != channel {
			chans = append(chans, c)
		}
	}
	return func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE outbox SET fallback_sent = 1 WHERE id = ?", row.id); err != nil {
			return err
		}
		return enqueue(tx, outMsg{msg: &m, channels: chans}, m.Key, now)
	}
}

// finishFn is the write that closes an outbox row.
func (t *Tower) finishFn(id int64, state string, attempts int, now time.Time, errText string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec("UPDATE outbox SET state = ?, attempts = ?, delivered = ?, last_error = ? WHERE id = ?",
			state, attempts, now.UnixNano(), errText, id)
		return err
	}
}
