// Package agent is `hinomi agent`: doctor's engine on an interval plus the
// live kernel log through the signature engine, shipped to one or more
// towers. Everything to ship goes first into a bounded on-disk spool per
// tower and leaves it only when that tower acknowledged it, so a tower
// that is down or restarting loses nothing; every successful delivery is
// also the host's heartbeat.
package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/checks"
	"github.com/hinomi/hinomi/internal/doctor"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/logsource"
	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/spool"
	"github.com/hinomi/hinomi/internal/wire"
)

// Config is the agent's configuration (flags, HINOMI_* variables).
type Config struct {
	// Towers are the towers' base URLs.
	Towers []string
	Token  string
	// Name is how the tower knows this host (default: the host name).
	Name     string
	StateDir string
	Interval time.Duration
	// SpoolBytes bounds each tower's spool on disk.
	SpoolBytes int64
	// Kmsg is the kernel log device ("" for /dev/kmsg; "-" to not read it).
	Kmsg string
	// Journal follows the systemd journal (service logs) with journalctl.
	Journal    bool
	Signatures *signatures.Catalogue
	Version    string
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Agent is a running agent.
type Agent struct {
	cfg     Config
	towers  []*tower
	matcher *signatures.Matcher
	bootID  string

	mu   sync.Mutex
	sent map[string]string // finding key → fingerprint of what the towers have
	// resync: send the whole set next cycle (a spool refused or dropped
	// records); dropped is the spools' drop count seen last.
	resync  bool
	dropped uint64
}

type tower struct {
	url   string
	spool *spool.Spool
	id    string // the spool's identity
	kick  chan struct{}
}

// New opens the agent's state.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Towers) == 0 {
		return nil, errors.New("no tower: give at least one tower URL")
	}
	if cfg.Token == "" {
		return nil, errors.New("no token: the tower's config lists a token for this agent")
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.SpoolBytes <= 0 {
		cfg.SpoolBytes = 64 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		// A tower behind a cut link swallows packets: do not wait longer
		// than an interval (at least 5 s) for an answer.
		cfg.HTTPClient = &http.Client{Timeout: max(5*time.Second, cfg.Interval)}
	}
	if cfg.Signatures == nil {
		c, err := signatures.Builtin()
		if err != nil {
			return nil, err
		}
		cfg.Signatures = c
	}
	a := &Agent{cfg: cfg, matcher: signatures.NewMatcher(cfg.Signatures), sent: map[string]string{}}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		a.bootID = strings.TrimSpace(string(b))
	}
	for _, u := range cfg.Towers {
		u = strings.TrimRight(u, "/")
		sum := sha256.Sum256([]byte(u))
		dir := filepath.Join(cfg.StateDir, "spool-"+hex.EncodeToString(sum[:6]))
		sp, err := spool.Open(dir, spool.Options{MaxBytes: cfg.SpoolBytes})
		if err != nil {
			return nil, fmt.Errorf("spool for %s: %w", u, err)
		}
		id, err := spoolID(dir)
		if err != nil {
			return nil, err
		}
		a.towers = append(a.towers, &tower{url: u, spool: sp, id: id, kick: make(chan struct{}, 1)})
	}
	return a, nil
}

// spoolID is a random identity kept beside the spool: sequence numbers
// count within it, and a fresh spool (a reinstall) gets a new one.
func spoolID(dir string) (string, error) {
	p := filepath.Join(dir, "id")
	if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, nil
}

// Run works until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	defer func() {
		for _, t := range a.towers {
			if err := t.spool.Close(); err != nil {
				a.cfg.Log.Error("closing spool", "tower", t.url, "err", err)
			}
		}
	}()
	var wg sync.WaitGroup
	for _, t := range a.towers {
		wg.Go(func() { a.ship(ctx, t) })
	}
	if a.cfg.Kmsg != "-" {
		wg.Go(func() { a.watchKernel(ctx) })
	}
	if a.cfg.Journal {
		wg.Go(func() { a.watchJournal(ctx) })
	}
	a.status(wire.Status{Event: "started", Message: "hinomi agent " + a.cfg.Version})
	a.cycles(ctx)
	wg.Wait()
	return nil
}

// cycles runs doctor's engine every interval and spools what changed.
func (a *Agent) cycles(ctx context.Context) {
	mounts := checks.NewMountProber(2 * time.Second)
	full := true
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		d, err := doctor.Diagnose(ctx, doctor.Options{Mounts: mounts, MountDeadline: 2 * time.Second, Signatures: a.matcher})
		if err != nil && ctx.Err() != nil {
			return // stopping: a diagnosis cut short is not sent
		}
		if err != nil {
			a.cfg.Log.Error("diagnosis failed", "err", err)
		} else {
			var dropped uint64
			for _, t := range a.towers {
				dropped += t.spool.Stats().Dropped
			}
			a.mu.Lock()
			if dropped > a.dropped || a.resync {
				full = true // the towers may have missed changes
			}
			a.dropped, a.resync = dropped, false
			a.mu.Unlock()
			a.findings(d, full)
			full = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// fingerprint is what makes a finding "changed" for the towers: its
// severity. Figures move every cycle and are sent with the next change.
func fingerprint(f finding.Finding) string { return f.Severity.String() + "|" + f.Key }

// findings spools the findings that opened, changed or resolved since the
// last cycle (all of them, marked full, after a start).
func (a *Agent) findings(d *doctor.Diagnosis, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := wire.Findings{Full: full}
	now := map[string]string{}
	for _, f := range d.Findings {
		fp := fingerprint(f)
		now[f.Key] = fp
		if full || a.sent[f.Key] != fp {
			rec.Open = append(rec.Open, f)
		}
	}
	for k := range a.sent {
		if _, ok := now[k]; !ok && !full {
			rec.Resolved = append(rec.Resolved, k)
		}
	}
	if !full && len(rec.Open) == 0 && len(rec.Resolved) == 0 {
		a.sent = now
		return
	}
	if a.append(wire.KindFindings, rec) {
		a.sent = now
	} else {
		// Not spooled everywhere: the next cycle sends the whole set.
		a.sent = map[string]string{}
		a.resync = true
	}
}

func (a *Agent) status(s wire.Status) { a.append(wire.KindStatus, s) }

// append spools one record for every tower; false when a spool refused it.
func (a *Agent) append(kind string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		a.cfg.Log.Error("encoding a record", "kind", kind, "err", err)
		return false
	}
	item, _ := json.Marshal(spooled{Kind: kind, Time: time.Now().UTC(), Data: data})
	ok := true
	for _, t := range a.towers {
		if _, err := t.spool.Append(item); err != nil {
			a.cfg.Log.Error("spooling a record", "tower", t.url, "err", err)
			ok = false
			continue
		}
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
	return ok
}

// spooled is a record as kept in the spool (the sequence number is the
// spool's).
type spooled struct {
	Kind string          `json:"kind"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// watchKernel follows the kernel log and spools every line that matches a
// signature.
func (a *Agent) watchKernel(ctx context.Context) {
	seqFile := filepath.Join(a.cfg.StateDir, "kmsg-seq")
	var from uint64
	if b, err := os.ReadFile(seqFile); err == nil {
		var boot string
		if _, err := fmt.Sscan(string(b), &boot, &from); err != nil || boot != a.bootID {
			from = 0 // another boot: its ring buffer starts over
		} else {
			from++
		}
	}
	backoff := time.Second
	for ctx.Err() == nil {
		err := logsource.Kmsg(ctx, a.cfg.Kmsg, from, func(l logsource.Line) error {
			a.matcher.Line(l.Text, "kernel", func(ev signatures.Event) {
				a.append(wire.KindLog, wire.Log{
					Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
					Source: "kernel", Line: ev.Entry.Message, Fields: ev.Fields,
				})
			})
			from = l.Seq + 1
			_ = os.WriteFile(seqFile, fmt.Appendf(nil, "%s %d\n", a.bootID, l.Seq), 0o600)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		a.cfg.Log.Warn("kernel log reader stopped; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// watchJournal follows the systemd journal (services' logs; the kernel's
// come from /dev/kmsg) and spools every line that matches a signature.
// The cursor is kept so a restarted agent resumes after the last line.
func (a *Agent) watchJournal(ctx context.Context) {
	curFile := filepath.Join(a.cfg.StateDir, "journal-cursor")
	backoff := time.Second
	for ctx.Err() == nil {
		cursor := ""
		if b, err := os.ReadFile(curFile); err == nil {
			cursor = strings.TrimSpace(string(b))
		}
		err := logsource.Journal(ctx, "", cursor, func(l logsource.Line) error {
			if bytes.Contains(l.Text, []byte(`"_TRANSPORT":"kernel"`)) {
				return nil // read from /dev/kmsg already
			}
			a.matcher.Line(l.Text, "journal", func(ev signatures.Event) {
				a.append(wire.KindLog, wire.Log{
					Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
					Source: ev.Entry.Source, Line: ev.Entry.Message, Fields: ev.Fields,
				})
			})
			if l.Cursor != "" {
				_ = os.WriteFile(curFile, []byte(l.Cursor+"\n"), 0o600)
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		a.cfg.Log.Warn("journal reader stopped; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// ship delivers one tower's spool in order, and reports at least every
// interval even with nothing to send (the heartbeat).
func (a *Agent) ship(ctx context.Context, t *tower) {
	backoff := time.Second
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	for {
		err := a.deliver(ctx, t)
		wait := a.cfg.Interval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if refused := (*refusedError)(nil); errors.As(err, &refused) {
				a.cfg.Log.Error("the tower refused this agent (check --token and --name against the tower's agents list); records stay in the spool",
					"tower", t.url, "err", err, "name", a.cfg.Name, "pending", t.spool.Stats().Pending, "retry_in", backoff)
			} else {
				a.cfg.Log.Warn("tower unreachable; records stay in the spool", "tower", t.url, "err", err,
					"pending", t.spool.Stats().Pending, "retry_in", backoff)
			}
			wait = backoff
			// Never wait longer than an interval: a tower that comes back
			// must hear from the host within one.
			backoff = min(2*backoff, 30*time.Second, a.cfg.Interval)
		} else {
			backoff = time.Second
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			// One last try, so what the last cycle found is not left behind.
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_ = a.deliver(sctx, t)
			cancel()
			return
		case <-t.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// deliver sends everything pending (at least one batch, empty when there
// is nothing: that is the heartbeat).
func (a *Agent) deliver(ctx context.Context, t *tower) error {
	for {
		recs, err := t.spool.Peek(500, 1<<20)
		if err != nil {
			return err
		}
		env := wire.Envelope{
			Agent: a.cfg.Name, Spool: t.id, BootID: a.bootID, Version: a.cfg.Version,
			Sent: time.Now().UTC(), Interval: a.cfg.Interval, Dropped: t.spool.Stats().Dropped,
			Records: make([]wire.Record, 0, len(recs)),
		}
		for _, r := range recs {
			var s spooled
			if err := json.Unmarshal(r.Data, &s); err != nil {
				// Unreadable: ship it as a status so the sequence stays whole.
				s = spooled{Kind: wire.KindStatus, Time: time.Now().UTC()}
				s.Data, _ = json.Marshal(wire.Status{Event: "corrupt", Message: "an unreadable spool record was skipped"})
			}
			env.Records = append(env.Records, wire.Record{Seq: r.Seq, Kind: s.Kind, Time: s.Time, Data: s.Data})
		}
		reply, err := a.post(ctx, t, &env)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		last := recs[len(recs)-1].Seq
		if reply.Acked < last {
			return fmt.Errorf("tower acknowledged %d of a batch up to %d", reply.Acked, last)
		}
		if err := t.spool.Ack(last); err != nil {
			return err
		}
		if len(recs) < 500 {
			return nil
		}
	}
}

func (a *Agent) post(ctx context.Context, t *tower, env *wire.Envelope) (*wire.Reply, error) {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	if err := json.NewEncoder(zw).Encode(env); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+wire.Path, &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var reply wire.Reply
	_ = json.Unmarshal(b, &reply)
	if resp.StatusCode != http.StatusOK {
		msg := reply.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		err := fmt.Errorf("%s: %s: %s", t.url, resp.Status, msg)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return nil, &refusedError{err}
		}
		return nil, err
	}
	return &reply, nil
}

// refusedError is a tower that answered and refused the batch: a wrong
// token or agent name, not a network problem.
type refusedError struct{ error }

func (e *refusedError) Unwrap() error { return e.error }
