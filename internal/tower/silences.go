package tower

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
)

// enqueue is the message's outbox rows for the store, queued at now.
func (o outMsg) enqueue(key string, now time.Time) Enqueue {
	group := ""
	if o.groupWait > 0 {
		group = o.msg.Host + "|" + o.msg.State.String()
	}
	return Enqueue{AlertKey: key, Msg: *o.msg, Channels: o.channels, Fallback: o.fallback, Group: group,
		Created: now, Due: now.Add(o.groupWait)}
}

func (t *Tower) loadSilences(now time.Time) error {
	ss, err := t.store.LoadSilences(context.Background(), now)
	t.silences = append(t.silences, ss...)
	return err
}

// AddSilence stores a silence and applies it from the next evaluation.
func (t *Tower) AddSilence(ctx context.Context, s Silence) (Silence, error) {
	now := t.now()
	if s.Starts.IsZero() {
		s.Starts = now
	}
	switch {
	case s.CreatedBy == "":
		return s, errors.New("created_by: say who silences")
	case !s.Ends.After(s.Starts):
		return s, errors.New("ends must be after starts")
	case s.Ends.Sub(s.Starts) > 90*24*time.Hour:
		return s, errors.New("a silence may last 90 days at most; use a maintenance window for a recurring one")
	}
	if err := s.Match.validate(); err != nil {
		return s, err
	}
	if s.Match.Host == "" && s.Match.Key == "" && len(s.Match.Kind) == 0 && len(s.Match.Severity) == 0 && len(s.Match.Labels) == 0 {
		return s, errors.New("match: a silence must select something (host, key, kind, severity or labels)")
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	s.ID = hex.EncodeToString(r[:])
	if err := t.store.SaveSilence(ctx, s); err != nil {
		return s, err
	}
	t.mu.Lock()
	t.silences = append(t.silences, s)
	t.silGen++
	t.mu.Unlock()
	t.kick()
	return s, nil
}

// ExpireSilence ends a silence now.
func (t *Tower) ExpireSilence(ctx context.Context, id string) error {
	now := t.now()
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	t.mu.Lock()
	var found *Silence
	for i := range t.silences {
		if t.silences[i].ID == id {
			t.silences[i].Ends = now
			cp := t.silences[i]
			found = &cp
		}
	}
	t.silGen++
	t.mu.Unlock()
	if found == nil {
		return fmt.Errorf("no silence %q", id)
	}
	if err := t.store.SaveSilence(ctx, *found); err != nil {
		return err
	}
	t.kick()
	return nil
}

// Acknowledge records who took a firing alert: it stops repeats and
// escalation and is shown on the alert's later messages.
func (t *Tower) Acknowledge(ctx context.Context, key, by, comment string) (Alert, error) {
	if by == "" {
		return Alert{}, errors.New("by: say who acknowledges")
	}
	// Copy and write under persistMu, as Evaluate does, so that neither
	// overwrites the other's newer state in the database.
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	t.mu.Lock()
	a := t.alerts[key]
	if a == nil || (a.State.Status != alerting.Firing && !a.State.Flapping) {
		t.mu.Unlock()
		return Alert{}, fmt.Errorf("no firing alert %q", key)
	}
	a.Ack = &Ack{By: by, At: t.now(), Comment: comment}
	cp := *a
	// The engine writes the labels of the alert it holds while the copy
	// is encoded (the answer, the store).
	cp.Labels = maps.Clone(a.Labels)
	t.mu.Unlock()
	text := "ACKNOWLEDGED: " + cp.Title + " by " + by
	if comment != "" {
		text += ": " + comment
	}
	// On the incident's timeline: who took it, when.
	err := t.store.SaveAck(ctx, cp, AlertEvent{At: cp.Ack.At, Key: key, Host: cp.Host, Incident: cp.Incident, Event: "ack", Text: text})
	return cp, err
}
