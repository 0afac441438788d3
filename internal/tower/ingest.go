package tower

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// ingester takes the agents' batches: it authenticates, bounds and sheds
// them (ingestSlots, the byte budget, the store's write queue), stores
// them through the Store, or into the ingest spool while a shared store is
// unreachable, and hands what they changed to the tower's view through
// hostView. It owns nothing of memState.
type ingester struct {
	cfg     *atomic.Pointer[Config]
	store   Store
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	view    hostView
	// once reports whether a line of this key may be logged now (once a
	// minute per key).
	once func(key string) bool
	// kick asks for an evaluation now.
	kick func()

	// slots bounds the batches in flight (maxIngest).
	slots chan struct{}
	// budget bounds each agent's share of ingest, in bytes (budget.go).
	budget byteBudget
	// agentLocks serialise each agent's batches (lockAgent).
	agentLocksMu sync.Mutex
	agentLocks   map[string]*sync.Mutex
	// spool keeps agents' batches while a shared store is unreachable
	// (spool.go); nil with a store of the tower's own.
	spool *ingestSpool
}

// hostView is what ingest changes in the tower's view of its hosts; the
// Tower implements it on memState, under its lock.
type hostView interface {
	// stored applies a stored batch: the host's heartbeat, loss and
	// spool position, and its findings records.
	stored(env *wire.Envelope, addr string, res BatchResult, now time.Time)
	// heard notes a host heard from whose batch could not be stored.
	heard(agent string, now time.Time)
	// spooled notes a batch kept in the ingest spool with the sequence
	// it acknowledges; it returns what the agent may drop.
	spooled(b Batch, acked uint64) uint64
	// lateFindings applies findings records written late (from the
	// spool).
	lateFindings(agent string, chs []FindingsChange, at time.Time)
}

// ServeHTTP takes one batch from an agent. Every record is stored once
// (INSERT OR IGNORE on agent, spool and sequence), so a batch resent after
// a timeout or a tower restart changes nothing. The reply comes after the
// commit: an acknowledged record is on disk.
func (t *ingester) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result := "ok"
	defer func() { t.metrics.ingest.WithLabelValues(result).Observe(time.Since(start).Seconds()) }()
	fail := func(code int, msg string) {
		result = strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "_"))
		t.refuse(w, r, code, msg)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "POST a batch")
		return
	}
	// Shed load before reading the body: past maxIngest batches in
	// flight, or with the write queue deep, the agent is told to come back
	// (it keeps the batch in its spool) rather than every agent waiting.
	select {
	case t.slots <- struct{}{}:
		defer func() { <-t.slots }()
	default:
		t.shed(w, &result, "too many batches in flight")
		return
	}
	if q := t.store.Queued(); q > maxQueuedWrites {
		t.shed(w, &result, fmt.Sprintf("%d writes queued", q))
		return
	}
	agent := t.agentOf(r)
	if agent == nil {
		fail(http.StatusUnauthorized, errUnknownToken)
		return
	}
	if wait := t.budget.wait(agent.Name, t.now()); wait > 0 {
		t.shedAgent(w, &result, agent.Name, wait)
		return
	}
	env, read, code, err := decodeEnvelope(w, r)
	t.budget.charge(agent.Name, read, t.now())
	if err != nil {
		fail(code, err.Error())
		return
	}
	if err := checkRange(env); err != nil {
		fail(http.StatusBadRequest, "invalid batch: "+err.Error())
		return
	}
	if env.Agent != agent.Name {
		fail(http.StatusForbidden, wrongAgent(agent, env))
		return
	}
	// One batch of an agent at a time: a resend that overlaps a slow
	// original must not apply its changes out of order.
	unlock := t.lockAgent(env.Agent)
	defer unlock()
	now := t.now()
	if n, first := clampTimes(env, now); n > 0 {
		t.logClockOff(env.Agent, n, first, now)
	}
	addr, _, _ := net.SplitHostPort(r.RemoteAddr)
	acked, err := t.ingestInTurns(r.Context(), env, addr, now)
	if err != nil {
		t.log.Error("storing a batch", "agent", env.Agent, "err", err)
		fail(http.StatusServiceUnavailable, "could not store the batch; resend it")
		return
	}
	t.metrics.records.Add(float64(len(env.Records)))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(wire.Reply{Acked: acked})
	// No evaluation per batch: the engine's 250 ms tick sees the change,
	// and a thousand agents do not cost a thousand evaluations.
}

const (
	// maxIngest bounds the batches being read, decoded and stored at once.
	maxIngest = 64
	// maxQueuedWrites is the write queue past which batches are shed: at a
	// few hundred microseconds a write, a queue this deep is tens of
	// milliseconds of waiting for everyone.
	maxQueuedWrites = 256
	// shedRetryAfter is what a shed batch's agent is told to wait.
	shedRetryAfter = 2 * time.Second
)

// shed answers 429 with Retry-After, and counts it.
func (t *ingester) shed(w http.ResponseWriter, result *string, why string) {
	*result = "shed"
	t.metrics.shed.Inc()
	if t.once("shed") {
		t.log.Warn("ingest overloaded: batches are answered 429 with Retry-After (logged once a minute; see hinomi_tower_ingest_shed_total)", "why", why, "retry_after", shedRetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(int(shedRetryAfter/time.Second)))
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(wire.Reply{Error: "tower overloaded (" + why + "); send again after Retry-After"})
}

// decodeEnvelope reads and validates a batch, bounded before and after
// gzip. It returns how many bytes the batch took decompressed (for the
// agent's byte budget, read even when decoding fails) and, with an error,
// the HTTP status that fits it.
func decodeEnvelope(w http.ResponseWriter, r *http.Request) (*wire.Envelope, int64, int, error) {
	body := http.MaxBytesReader(w, r.Body, wire.MaxBody)
	var rd io.Reader = body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, 0, http.StatusBadRequest, fmt.Errorf("body is not gzip: %w", err)
		}
		rd = &capReader{r: zr, left: maxDecompressed}
	}
	read := &countingReader{r: rd}
	var env wire.Envelope
	if err := json.NewDecoder(read).Decode(&env); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, read.n, http.StatusRequestEntityTooLarge, fmt.Errorf("batch larger than %d bytes", wire.MaxBody)
		case errors.Is(err, errDecompressedTooBig):
			return nil, read.n, http.StatusRequestEntityTooLarge, fmt.Errorf("batch larger than %d bytes decompressed", maxDecompressed)
		}
		return nil, read.n, http.StatusBadRequest, fmt.Errorf("malformed batch: %w", err)
	}
	if err := env.Validate(); err != nil {
		return nil, read.n, http.StatusBadRequest, fmt.Errorf("invalid batch: %w", err)
	}
	if len(env.Records) > wire.MaxRecords {
		return nil, read.n, http.StatusRequestEntityTooLarge, fmt.Errorf("batch has %d records; at most %d per batch (split it)", len(env.Records), wire.MaxRecords)
	}
	return &env, read.n, 0, nil
}

// errUnknownToken is the refusal of a batch whose token no agent has.
const errUnknownToken = "unknown or missing agent token"

// agentOf is the agent whose token the request carries, nil if none.
func (t *ingester) agentOf(r *http.Request) *AgentConfig {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil
	}
	return t.cfg.Load().agentByToken(token)
}

// wrongAgent is the refusal of a batch sent under another agent's token.
func wrongAgent(agent *AgentConfig, env *wire.Envelope) string {
	return fmt.Sprintf("this token belongs to agent %q, not %q (start the agent with --name %s)", agent.Name, env.Agent, agent.Name)
}

// refuse answers a batch with an error, and logs it (logRefusal).
func (t *ingester) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	t.logRefusal(r.RemoteAddr, code, msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(wire.Reply{Error: msg})
}

// lostReason is the batch's reason for lost records, bounded.
func lostReason(env *wire.Envelope) string {
	r := strings.TrimSpace(env.LostReason)
	if len(r) > maxLostReason {
		r = r[:maxLostReason]
	}
	return r
}

// maxDecompressed bounds a gzip batch's decompressed size.
const maxDecompressed = 4 * wire.MaxBody

var errDecompressedTooBig = errors.New("decompressed batch too large")

// capReader fails with errDecompressedTooBig past left bytes.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errDecompressedTooBig
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// checkRange refuses numbers the database cannot hold (SQLite integers are
// signed 64-bit): a sequence number or dropped count of 2^63 or more.
func checkRange(env *wire.Envelope) error {
	if env.Dropped > math.MaxInt64 {
		return fmt.Errorf("dropped %d is beyond the largest count the tower stores (2^63-1)", env.Dropped)
	}
	if env.Lost > math.MaxInt64 {
		return fmt.Errorf("lost %d is beyond the largest count the tower stores (2^63-1)", env.Lost)
	}
	for i, r := range env.Records {
		if r.Seq > math.MaxInt64 {
			return fmt.Errorf("records[%d]: seq %d is beyond the largest sequence number the tower stores (2^63-1)", i, r.Seq)
		}
	}
	return nil
}

// Record times further than this from the tower's clock are taken as a
// broken clock on the host (a dead RTC battery reads 1970, a mistyped date
// 2099), not as when the record happened.
const (
	maxAhead  = 24 * time.Hour
	maxBehind = 366 * 24 * time.Hour
)

// clampTimes replaces record times outside [now-maxBehind, now+maxAhead]
// by now, the time the tower received them; the record's data keeps what
// the agent said. It returns how many it replaced and the first of them.
func clampTimes(env *wire.Envelope, now time.Time) (int, time.Time) {
	var n int
	var first time.Time
	for i := range env.Records {
		r := &env.Records[i]
		if r.Time.After(now.Add(maxAhead)) || r.Time.Before(now.Add(-maxBehind)) {
			if n == 0 {
				first = r.Time
			}
			n++
			r.Time = now
		}
	}
	return n, first
}

// logClockOff says, once a minute per agent, that its records' times were
// replaced.
func (t *ingester) logClockOff(agent string, n int, example, now time.Time) {
	if t.once("clock " + agent) {
		t.log.Warn("record times out of range stored as received: is the host's clock right?",
			"agent", agent, "records", n, "record_time", example, "tower_time", now)
	}
}

// ingest stores a batch and updates the tower's view of the host.
func (t *ingester) ingest(ctx context.Context, env *wire.Envelope, addr string, now time.Time) (uint64, error) {
	b := Batch{Agent: env.Agent, Spool: env.Spool, BootID: env.BootID, Version: env.Version, Addr: addr,
		Interval: env.Interval, Dropped: env.Dropped, Lost: env.Lost, LostReason: lostReason(env), Records: env.Records, Received: now}
	if t.spool != nil && t.spool.pending() > 0 {
		return t.spoolBatch(b) // behind the batches already waiting
	}
	res, err := t.store.SaveBatch(ctx, b)
	if err != nil {
		if t.spool != nil && t.store.StorageError(err) {
			if acked, serr := t.spoolBatch(b); serr == nil {
				return acked, nil
			} else if t.once("spool") {
				t.log.Error("the ingest spool cannot take a batch either; the agent keeps it", "err", serr)
			}
		}
		if t.store.StorageError(err) {
			// Not stored (the agent keeps the batch and sends it again),
			// but the host was heard from: it is not silent.
			t.view.heard(env.Agent, now)
		}
		return 0, err
	}
	t.view.stored(env, addr, res, now)
	return res.Acked, nil
}

// lockAgent serialises the batches of one agent.
func (t *ingester) lockAgent(name string) func() {
	t.agentLocksMu.Lock()
	if t.agentLocks == nil {
		t.agentLocks = map[string]*sync.Mutex{}
	}
	m := t.agentLocks[name]
	if m == nil {
		m = &sync.Mutex{}
		t.agentLocks[name] = m
	}
	t.agentLocksMu.Unlock()
	m.Lock()
	return m.Unlock
}

// logRefusal logs a refused batch, once a minute per client address and
// reason: an agent with a wrong token or name must show in the tower's
// log, a client retrying every second must not flood it.
func (t *ingester) logRefusal(remote string, code int, msg string) {
	addr, _, err := net.SplitHostPort(remote)
	if err != nil {
		addr = remote
	}
	if !t.once("refused " + addr + " " + strconv.Itoa(code) + " " + msg) {
		return
	}
	t.log.Warn("agent batch refused", "remote", addr, "status", code, "reason", msg)
}
