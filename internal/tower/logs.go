package tower

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/wire"
)

// The central log store's side of the tower: agents' log spools are
// delivered to wire.LinesPath, syslog senders to the syslog receiver
// (syslog.go); both end in logs.append, and GET /api/v1/logs searches.
//
// Nothing the tower acknowledged is lost: a batch is acknowledged only
// after the store's Append returned (durable). There is one write, so
// there is no order of writes to get wrong; what remains is a resend of
// a batch the store took but whose acknowledgement a crash (or a lost
// reply) kept from the agent. Every stored line carries its place in the
// agent's spool (field "seq": spool, sequence number, index in the
// record), and until the tower has seen an agent's batch hold nothing it
// already stored, it looks for these in the store before it appends: a
// resend after a kill -9 stores nothing twice. After that, the
// sequence numbers acknowledged in memory are enough.

// logIngest is the tower's log store and what ingest keeps about it.
type logIngest struct {
	mu      sync.Mutex
	store   logstore.Store
	openErr error
	tried   time.Time
	agents  map[string]*logAgent
	buckets map[string]*rateBucket
	// failing is why the latest Append failed and since when ("" while
	// the store takes lines).
	failing      string
	failingSince time.Time

	lines    *prometheus.CounterVec
	unusable prometheus.Gauge
	// slots bounds the batches of lines being read and stored at once,
	// apart from the findings' ingest, so lines never hold findings back.
	slots chan struct{}
}

// maxLogIngest bounds the batches of lines in flight.
const maxLogIngest = 16

// logAgent is an agent's log spool as the tower knows it.
type logAgent struct {
	spool    string
	acked    uint64
	verified bool // a batch of this spool held no line already stored
}

// logsReopen is how often a log store that could not be opened is tried
// again.
const logsReopen = 10 * time.Second

func newLogIngest(reg *prometheus.Registry) *logIngest {
	l := &logIngest{agents: map[string]*logAgent{}, buckets: map[string]*rateBucket{}, slots: make(chan struct{}, maxLogIngest),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hinomi_tower_log_lines_total", Help: "Log lines received from agents and syslog senders, by result: stored, rate_limited (dropped and counted in a stored line), duplicate (a resend), refused (the log store could not take them; agents keep them).",
		}, []string{"result"}),
		unusable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hinomi_tower_log_store_unwritable", Help: "1 while the log store cannot take lines (disk full, unreachable, not opened): agents keep their lines in their spools.",
		}),
	}
	reg.MustRegister(l.lines, l.unusable)
	return l
}

// logStore is the open log store, opening it on first use (and again
// every logsReopen while it cannot be).
func (t *Tower) logStore(ctx context.Context) (logstore.Store, error) {
	l := t.logs
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return l.store, nil
	}
	cfg := t.cfg.Load()
	if cfg.Logs.Store == "off" {
		return nil, errors.New("this tower keeps no logs (logs.store: off)")
	}
	if !l.tried.IsZero() && time.Since(l.tried) < logsReopen {
		return nil, l.openErr
	}
	l.tried = time.Now()
	st, err := logstore.Open(ctx, cfg.Logs.Store, cfg.DataDir, logstore.Options{
		MaxAge: time.Duration(cfg.Logs.MaxAge), MaxBytes: int64(cfg.Logs.MaxBytes), Logger: t.log, Now: t.now,
	})
	if err != nil {
		l.openErr = fmt.Errorf("the log store (%s) cannot be opened: %w", cfg.Logs.Store, err)
		l.setFailing(l.openErr.Error(), t.now())
		if t.oncePerMinute("logstore open") {
			t.log.Error("the log store cannot be opened; log lines are refused and stay in the agents' spools", "store", cfg.Logs.Store, "err", err)
		}
		return nil, l.openErr
	}
	l.store, l.openErr = st, nil
	l.setFailing("", time.Time{})
	return st, nil
}

func (l *logIngest) setFailing(why string, now time.Time) {
	if why == "" {
		l.failing, l.failingSince = "", time.Time{}
		l.unusable.Set(0)
		return
	}
	if l.failing == "" {
		l.failingSince = now
	}
	l.failing = why
	l.unusable.Set(1)
}

// logsFailing is why the log store cannot take lines, "" when it can.
func (t *Tower) logsFailing() (string, time.Time) {
	t.logs.mu.Lock()
	defer t.logs.mu.Unlock()
	return t.logs.failing, t.logs.failingSince
}

// closeLogs closes the log store as the tower stops.
func (t *Tower) closeLogs() error {
	t.logs.mu.Lock()
	defer t.logs.mu.Unlock()
	if t.logs.store == nil {
		return nil
	}
	err := t.logs.store.Close()
	t.logs.store = nil
	return err
}

// checkLogsReload refuses a reload that would move the log store: the
// open one stays until a restart.
func checkLogsReload(old, cfg *Config) error {
	if old.Logs.Store != cfg.Logs.Store {
		return errors.New("logs.store cannot change on reload; restart the tower")
	}
	return nil
}

// bannerReason is the status page's banner: the database's trouble
// first, else the log store's.
func (t *Tower) bannerReason() (string, time.Time) {
	if why, since := t.degradedReason(); why != "" {
		return why, since
	}
	if why, since := t.logsFailing(); why != "" {
		return "tower " + t.name() + " cannot store log lines: " + why + "; agents keep theirs in their spools until it can", since
	}
	return "", time.Time{}
}

// appendLines stores entries, noting whether the store takes them.
func (t *Tower) appendLines(ctx context.Context, entries []logstore.Entry) error {
	st, err := t.logStore(ctx)
	if err != nil {
		t.logs.lines.WithLabelValues("refused").Add(float64(len(entries)))
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	t.recent.appendMu.RLock()
	err = st.Append(ctx, entries)
	if err == nil {
		t.recent.add(entries)
	}
	t.recent.appendMu.RUnlock()
	t.logs.mu.Lock()
	if err != nil {
		t.logs.setFailing(logStoreReason(err), t.now())
	} else if t.logs.failing != "" {
		t.log.Info("the log store takes lines again", "was", t.logs.failing, "for", t.now().Sub(t.logs.failingSince).Round(time.Second))
		t.logs.setFailing("", time.Time{})
	}
	t.logs.mu.Unlock()
	if err != nil {
		t.logs.lines.WithLabelValues("refused").Add(float64(len(entries)))
		if t.oncePerMinute("logstore append") {
			t.log.Error("the log store refuses lines; agents keep theirs in their spools (logged once a minute)", "reason", logStoreReason(err), "err", err)
		}
		return fmt.Errorf("the tower's log store cannot take lines: %s", logStoreReason(err))
	}
	t.logs.lines.WithLabelValues("stored").Add(float64(len(entries)))
	return nil
}

// logStoreReason says in a few words why the log store failed.
func logStoreReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "its disk is full"
	case errors.Is(err, syscall.EDQUOT):
		return "its disk quota is exceeded"
	case errors.Is(err, syscall.EROFS):
		return "its file system is read-only"
	case errors.Is(err, syscall.EIO):
		return "its disk has I/O errors"
	}
	return err.Error()
}

// handleLogIngest takes a batch of an agent's log spool.
func (t *Tower) handleLogIngest(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) {
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "10")
		}
		t.in.refuse(w, r, code, msg)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "POST a batch")
		return
	}
	cfg := t.cfg.Load()
	agent := t.in.agentOf(r)
	if agent == nil {
		fail(http.StatusUnauthorized, errUnknownToken)
		return
	}
	select {
	case t.logs.slots <- struct{}{}:
		defer func() { <-t.logs.slots }()
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", strconv.Itoa(int(shedRetryAfter/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(wire.Reply{Error: "too many batches of log lines in flight; send again after Retry-After"})
		return
	}
	if cfg.Logs.Store == "off" {
		// Taken and forgotten: a tower that keeps no logs must not make
		// every agent keep them forever.
		env, _, code, err := decodeEnvelope(w, r)
		if err != nil {
			fail(code, err.Error())
			return
		}
		var last uint64
		if n := len(env.Records); n > 0 {
			last = env.Records[n-1].Seq
		}
		writeJSON(w, http.StatusOK, wire.Reply{Acked: last})
		return
	}
	env, _, code, err := decodeEnvelope(w, r)
	if err != nil {
		fail(code, err.Error())
		return
	}
	if env.Agent != agent.Name {
		fail(http.StatusForbidden, wrongAgent(agent, env))
		return
	}
	for i, rec := range env.Records {
		if rec.Kind != wire.KindLines {
			fail(http.StatusBadRequest, fmt.Sprintf("invalid batch: records[%d]: kind %q; only %q goes to %s", i, rec.Kind, wire.KindLines, wire.LinesPath))
			return
		}
	}
	unlock := t.in.lockAgent("logs " + env.Agent)
	defer unlock()
	acked, err := t.ingestLines(r.Context(), env, t.now())
	if err != nil {
		fail(http.StatusServiceUnavailable, err.Error()+"; the agent keeps the lines and sends them again")
		return
	}
	writeJSON(w, http.StatusOK, wire.Reply{Acked: acked})
}

// ingestLines stores the new lines of a batch and returns the sequence
// number the agent may forget up to.
func (t *Tower) ingestLines(ctx context.Context, env *wire.Envelope, now time.Time) (uint64, error) {
	t.logs.mu.Lock()
	st := t.logs.agents[env.Agent]
	if st == nil || st.spool != env.Spool {
		st = &logAgent{spool: env.Spool}
		t.logs.agents[env.Agent] = st
	}
	from := st.acked
	t.logs.mu.Unlock()
	if len(env.Records) == 0 {
		return from, nil
	}
	last := env.Records[len(env.Records)-1].Seq
	if last <= from {
		t.logs.lines.WithLabelValues("duplicate").Add(float64(len(env.Records)))
		return from, nil
	}
	cfg := t.cfg.Load()
	tag := env.Spool
	if len(tag) > 8 {
		tag = tag[:8]
	}
	var entries []logstore.Entry
	var limited int
	var limitedAt time.Time
	for _, rec := range env.Records {
		if rec.Seq <= from {
			continue
		}
		var ls wire.Lines
		if err := json.Unmarshal(rec.Data, &ls); err != nil {
			ls.Lines = []wire.Line{{Time: rec.Time, Source: "hinomi", Unit: "hinomi-tower", Priority: 4,
				Text: "hinomi tower: an unreadable record of log lines from this agent was skipped: " + err.Error()}}
		}
		allowed := t.allowLines(env.Agent, len(ls.Lines), cfg.Logs, now)
		for i, l := range ls.Lines {
			at := l.Time
			if at.IsZero() || at.After(now.Add(maxAhead)) || at.Before(now.Add(-maxBehind)) {
				at = rec.Time
			}
			if i >= allowed {
				if limited == 0 {
					limitedAt = at
				}
				limited++
				continue
			}
			e := lineEntry(env.Agent, at, l.Source, l.Unit, l.Priority, l.Text, l.Fields)
			e.Fields["seq"] = tag + ":" + strconv.FormatUint(rec.Seq, 10) + ":" + strconv.Itoa(i)
			entries = append(entries, e)
		}
		if limited > 0 && (allowed < len(ls.Lines)) {
			entries = append(entries, droppedEntry(env.Agent, limitedAt, limited, cfg.Logs.RateLimit, tag+":"+strconv.FormatUint(rec.Seq, 10)+":dropped"))
			t.logs.lines.WithLabelValues("rate_limited").Add(float64(limited))
			limited = 0
		}
	}
	t.logs.mu.Lock()
	verified := st.verified
	t.logs.mu.Unlock()
	if !verified {
		kept, dup, err := t.withoutStored(ctx, env.Agent, entries)
		if err != nil {
			return 0, err
		}
		if dup == 0 {
			t.logs.mu.Lock()
			st.verified = true
			t.logs.mu.Unlock()
		}
		t.logs.lines.WithLabelValues("duplicate").Add(float64(dup))
		entries = kept
	}
	if err := t.appendLines(ctx, entries); err != nil {
		t.logs.mu.Lock()
		st.verified = false // part of it may be stored
		t.logs.mu.Unlock()
		return 0, err
	}
	t.logs.mu.Lock()
	st.acked = max(st.acked, last)
	t.logs.mu.Unlock()
	return last, nil
}

// withoutStored drops the entries the store holds already (by their
// "seq" field): a batch stored before a crash kept its acknowledgement
// from the agent.
func (t *Tower) withoutStored(ctx context.Context, host string, entries []logstore.Entry) ([]logstore.Entry, int, error) {
	if len(entries) == 0 {
		return entries, 0, nil
	}
	lo, hi := entries[0].Time, entries[0].Time
	want := make(map[string]bool, len(entries))
	for _, e := range entries {
		lo, hi = minTime(lo, e.Time), maxTime(hi, e.Time)
		want[e.Fields["seq"]] = true
	}
	st, err := t.logStore(ctx)
	if err != nil {
		return nil, 0, err
	}
	have := map[string]bool{}
	q := logstore.Query{Hosts: []string{host}, MaxPriority: 7, Since: lo, Until: hi.Add(time.Nanosecond), Limit: 1 << 30}
	if err := st.Search(ctx, q, func(e logstore.Entry) bool {
		if s := e.Fields["seq"]; want[s] {
			have[s] = true
		}
		return true
	}); err != nil {
		return nil, 0, fmt.Errorf("the tower's log store cannot be searched: %s", logStoreReason(err))
	}
	if len(have) == 0 {
		return entries, 0, nil
	}
	kept := entries[:0:0]
	for _, e := range entries {
		if !have[e.Fields["seq"]] {
			kept = append(kept, e)
		}
	}
	return kept, len(entries) - len(kept), nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// lineEntry makes a stored entry of a line: valid UTF-8, cut at
// logstore.MaxLine with a marker, a priority within 0..7 or -1.
func lineEntry(host string, at time.Time, source, unit string, priority int, text string, fields map[string]string) logstore.Entry {
	if priority < -1 || priority > 7 {
		priority = -1
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	f := make(map[string]string, len(fields)+1)
	for k, v := range fields {
		if len(f) >= 32 {
			break
		}
		f[bound(k, 64)] = bound(v, 1024)
	}
	return logstore.Entry{Time: at.UTC(), Host: bound(host, 255), Source: bound(source, 1024), Unit: bound(unit, 255),
		Priority: priority, Line: logstore.CutLine(text), Fields: f}
}

// bound cuts a short field (a unit, a source) to n bytes of valid UTF-8.
func bound(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// droppedEntry is the line stored in place of the lines a rate limit
// dropped.
func droppedEntry(host string, at time.Time, n, rate int, seq string) logstore.Entry {
	return logstore.Entry{Time: at.UTC(), Host: host, Source: "hinomi", Unit: "hinomi-tower", Priority: 4,
		Line:   fmt.Sprintf("hinomi tower: %d lines dropped: %s sent more than its limit of %d lines a second (logs.rate_limit)", n, host, rate),
		Fields: map[string]string{"dropped": strconv.Itoa(n), "seq": seq}}
}

// rateBucket is a token bucket of lines.
type rateBucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the hosts whose rate is tracked (syslog senders can
// be anyone allowed): past it, idle buckets are forgotten.
const maxBuckets = 10000

// allowLines takes n lines from host's bucket and returns how many of
// them it may store.
func (t *Tower) allowLines(host string, n int, cfg LogsConfig, now time.Time) int {
	t.logs.mu.Lock()
	defer t.logs.mu.Unlock()
	b := t.logs.buckets[host]
	if b == nil {
		if len(t.logs.buckets) >= maxBuckets {
			for k, o := range t.logs.buckets {
				if now.Sub(o.at) > time.Minute {
					delete(t.logs.buckets, k)
				}
			}
		}
		b = &rateBucket{tokens: float64(cfg.Burst), at: now}
		t.logs.buckets[host] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(float64(cfg.Burst), b.tokens+dt*float64(cfg.RateLimit))
	}
	b.at = now
	take := min(n, int(b.tokens))
	b.tokens -= float64(take)
	return take
}
