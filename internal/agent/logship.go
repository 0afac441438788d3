package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/spool"
	"github.com/hinomi/hinomi/internal/wire"
)

// LogShip says which of the lines the agent reads are shipped to the
// towers' log stores. The zero value ships the default: every line of the
// kernel, of the followed files and of the containers, and the journal's
// lines at priority info or more severe (debug left out).
type LogShip struct {
	// Off ships nothing (matched lines still become findings).
	Off bool
	// Priority: lines with a known priority (journal, kernel) are shipped
	// when at least this severe, 0 (emerg) .. 7 (debug); 0 means the
	// default, DefaultShipPriority, and -1 ships emerg lines only.
	Priority int
	// Units, when set, ships only lines of these units: systemd units
	// (with or without ".service"), container names, "kernel", or a
	// file's path.
	Units []string
	// Match, when set, ships only lines it matches.
	Match *regexp.Regexp
	// SpoolBytes bounds each tower's log spool (0: DefaultLogSpoolBytes).
	SpoolBytes int64
}

const (
	// DefaultShipPriority ships the journal's info lines and leaves out
	// its debug ones.
	DefaultShipPriority = 6
	// DefaultLogSpoolBytes bounds each tower's log spool: at a thousand
	// lines of 150 bytes a second, compressed, hours of a tower's outage.
	DefaultLogSpoolBytes = 256 << 20
)

const (
	// shipEvery is how long a line waits in memory before it is spooled:
	// a host that dies loses at most this much of its last words.
	shipEvery = time.Second
	// shipLines and shipBytes spool the buffer sooner when it fills.
	shipLines = 2000
	shipBytes = 512 << 10
	// maxShipBuffer bounds the buffer if the spool cannot keep up (a
	// stalled disk): lines beyond it are dropped and counted.
	maxShipBuffer = 8 * shipBytes
	// linesPerBatch and linesBatchBytes bound one delivery of lines (the
	// bytes uncompressed: a batch stays far below what a tower takes).
	linesPerBatch   = 64
	linesBatchBytes = 2 << 20
	// oldTowerRetry is how often a tower that does not take lines (it
	// predates log shipping) is asked again.
	oldTowerRetry = 5 * time.Minute
)

// shipper gathers the lines to ship and spools them in records of many
// lines each.
type shipper struct {
	cfg LogShip
	mu  sync.Mutex
	buf []wire.Line
	// size is the buffer's payload in bytes; dropped counts lines dropped
	// since the last flush because the buffer was full.
	size    int
	dropped uint64
	full    chan struct{}
}

func newShipper(cfg LogShip) *shipper {
	switch cfg.Priority {
	case 0:
		cfg.Priority = DefaultShipPriority
	case -1:
		cfg.Priority = 0
	}
	if cfg.SpoolBytes <= 0 {
		cfg.SpoolBytes = DefaultLogSpoolBytes
	}
	return &shipper{cfg: cfg, full: make(chan struct{}, 1)}
}

// wants reports whether a line passes the filter.
func (s *shipper) wants(l *wire.Line) bool {
	if s.cfg.Off {
		return false
	}
	if l.Priority >= 0 && l.Priority > s.cfg.Priority {
		return false
	}
	if len(s.cfg.Units) > 0 && !s.unitWanted(l) {
		return false
	}
	return s.cfg.Match == nil || s.cfg.Match.MatchString(l.Text)
}

func (s *shipper) unitWanted(l *wire.Line) bool {
	file, _ := strings.CutPrefix(l.Source, "file:")
	for _, u := range s.cfg.Units {
		if u == l.Unit || u+".service" == l.Unit || u == file || u == "kernel" && l.Source == "kmsg" {
			return true
		}
	}
	return false
}

// add queues a line; false when it was dropped because the buffer is full.
func (s *shipper) add(l wire.Line) {
	l.Text = logstore.CutLine(l.Text)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.size >= maxShipBuffer {
		s.dropped++
		return
	}
	s.buf = append(s.buf, l)
	s.size += len(l.Text) + len(l.Source) + len(l.Unit) + 48
	if len(s.buf) >= shipLines || s.size >= shipBytes {
		select {
		case s.full <- struct{}{}:
		default:
		}
	}
}

// take empties the buffer.
func (s *shipper) take() ([]wire.Line, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines, dropped := s.buf, s.dropped
	s.buf, s.size, s.dropped = nil, 0, 0
	return lines, dropped
}

// shipLine sends a line read from a source to the shipper, if it wants it.
func (a *Agent) shipLine(l wire.Line) {
	if a.ship == nil || !a.ship.wants(&l) {
		return
	}
	a.ship.add(l)
}

// flushLines spools what the shipper holds, one record per tower. Only
// one flush runs at a time, so records keep the lines' order.
func (a *Agent) flushLines() {
	if a.ship == nil {
		return
	}
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	lines, dropped := a.ship.take()
	now := time.Now().UTC()
	if dropped > 0 {
		lines = append(lines, wire.Line{Time: now, Source: "hinomi", Unit: "hinomi-agent", Priority: 4,
			Text: fmt.Sprintf("hinomi agent: %d log lines dropped: they came faster than its log spool could take them", dropped)})
	}
	items, err := encodeRecords(lines, now)
	if err != nil {
		a.throttledWarn("encode lines", "encoding log lines", "err", err)
		return
	}
	for _, t := range a.towers {
		own := items
		// Lines this tower's spool dropped at its bound, counted in place.
		if st := t.lines.Stats(); st.Dropped > t.linesDropped {
			extra, err := encodeRecords([]wire.Line{{Time: now, Source: "hinomi", Unit: "hinomi-agent", Priority: 4,
				Text: fmt.Sprintf("hinomi agent: %d records of log lines (%d bytes) dropped: its log spool for this tower reached its bound of %d bytes while the tower did not take them",
					st.Dropped-t.linesDropped, st.DroppedBytes-t.linesDroppedBytes, a.ship.cfg.SpoolBytes)}}, now)
			if err == nil {
				own = append(own[:len(own):len(own)], extra...)
				t.linesDropped, t.linesDroppedBytes = st.Dropped, st.DroppedBytes
			}
		}
		for _, item := range own {
			a.appendLines(t, item)
		}
	}
}

// maxLinesRecord bounds one spooled record of lines (encoded): a batch of
// them stays far below what a tower takes (wire.MaxBody, compressed, and
// four times that decompressed) whatever the lines hold.
const maxLinesRecord = 1 << 20

// encodeRecords encodes lines as spooled records of at most
// maxLinesRecord bytes each (a single line alone may exceed it: it is at
// most logstore.MaxLine, escaped).
func encodeRecords(lines []wire.Line, now time.Time) ([][]byte, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	item, err := encodeLines(lines, now)
	if err != nil {
		return nil, err
	}
	if len(item) <= maxLinesRecord || len(lines) == 1 {
		return [][]byte{compressLines(item)}, nil
	}
	head, err := encodeRecords(lines[:len(lines)/2], now)
	if err != nil {
		return nil, err
	}
	tail, err := encodeRecords(lines[len(lines)/2:], now)
	return append(head, tail...), err
}

func encodeLines(lines []wire.Line, now time.Time) ([]byte, error) {
	data, err := json.Marshal(wire.Lines{Lines: lines})
	if err != nil {
		return nil, err
	}
	// The spooled record, written out rather than marshalled: Marshal
	// would scan the lines' JSON again to compact it.
	at, _ := now.MarshalJSON()
	item := make([]byte, 0, len(data)+64)
	item = append(item, `{"kind":"`+wire.KindLines+`","time":`...)
	item = append(item, at...)
	item = append(item, `,"data":`...)
	item = append(item, data...)
	return append(item, '}'), nil
}

// compressLines compresses a spooled record of lines: log lines take a
// fifth of their size or less, so the same bound holds five times the
// outage.
func compressLines(item []byte) []byte {
	return lineEncoder().EncodeAll(item, append(make([]byte, 0, len(item)/4+16), zstdMark...))
}

// zstdMark starts a compressed record of lines in the log spool (a JSON
// record starts with '{').
var zstdMark = []byte{0, 'Z'}

// lineEncoder and lineDecoder compress the log spool's records, made on
// first use (not in every hinomi command); EncodeAll and DecodeAll are
// safe for concurrent use.
var (
	lineEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		return e
	})
	lineDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		return d
	})
)

// decodeSpooled reads a record of the log spool: compressed, or JSON as
// an older agent wrote it.
func decodeSpooled(b []byte) (spooled, error) {
	var s spooled
	if bytes.HasPrefix(b, zstdMark) {
		raw, err := lineDecoder().DecodeAll(b[len(zstdMark):], nil)
		if err != nil {
			return s, err
		}
		b = raw
	}
	err := json.Unmarshal(b, &s)
	return s, err
}

func (a *Agent) appendLines(t *tower, item []byte) {
	if _, err := t.lines.Append(item); err != nil {
		if !errors.Is(err, spool.ErrClosed) {
			a.throttledWarn("log spool "+t.url, "cannot spool log lines; they are lost", "tower", t.url, "reason", lossReason(err), "err", err)
		}
		return
	}
	select {
	case t.linesKick <- struct{}{}:
	default:
	}
}

// spoolLines spools the buffer every shipEvery, or sooner when it fills,
// and once more as the agent stops.
func (a *Agent) spoolLines(ctx context.Context) {
	tick := time.NewTicker(shipEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			a.flushLines()
			return
		case <-tick.C:
		case <-a.ship.full:
		}
		a.flushLines()
	}
}

// openLineSpool opens the log spool for one tower, beside its record spool.
func openLineSpool(stateDir, key string, maxBytes int64) (*spool.Spool, string, error) {
	dir := filepath.Join(stateDir, "logspool-"+key)
	sp, err := spool.Open(dir, spool.Options{MaxBytes: maxBytes})
	if err != nil {
		return nil, "", err
	}
	id, err := spoolID(dir)
	if err != nil {
		sp.Close()
		return nil, "", err
	}
	return sp, id, nil
}

// errOldTower is a tower that has no log ingest (it predates it).
var errOldTower = errors.New("the tower does not take log lines (it predates log shipping): upgrade it; lines stay in the log spool")

// shipLog delivers one tower's log spool. Heartbeats and findings go
// through the other spool: this one only carries lines, and a tower that
// cannot store them (its log store is full, it predates log shipping)
// holds back only them.
func (a *Agent) shipLog(ctx context.Context, t *tower) {
	retry := a.retryMin
	var failingSince time.Time
	for {
		select {
		case <-t.linesKick:
		default:
		}
		err := a.deliverLines(ctx, t)
		var wait time.Duration
		switch {
		case err == nil:
			if !failingSince.IsZero() {
				a.cfg.Log.Info("delivering log lines to the tower again", "tower", t.url, "down_for", time.Since(failingSince).Round(time.Second))
			}
			failingSince, retry, wait = time.Time{}, a.retryMin, time.Hour
		case ctx.Err() != nil:
			a.lastLines(t)
			return
		default:
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			wait, retry = retry, min(2*retry, 30*time.Second)
			if errors.Is(err, errOldTower) {
				wait = oldTowerRetry
			}
			if busy := (*busyError)(nil); errors.As(err, &busy) {
				wait = max(wait, busy.after)
			}
			a.throttledWarn("ship lines "+t.url, "log lines not delivered; they stay in the log spool", "tower", t.url, "err", err,
				"pending", t.lines.Stats().Pending, "retry_in", wait)
		}
		timer := time.NewTimer(wait)
		kick := t.linesKick
		if err != nil {
			kick = nil
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			a.lastLines(t)
			return
		case <-kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (a *Agent) lastLines(t *tower) {
	ctx, cancel := context.WithTimeout(context.Background(), lastTryFor)
	defer cancel()
	_ = a.deliverLines(ctx, t)
}

// deliverLines sends everything pending in the log spool.
func (a *Agent) deliverLines(ctx context.Context, t *tower) error {
	for {
		recs, err := t.lines.Peek(linesPerBatch, linesBatchBytes)
		if err != nil {
			return &spoolError{err}
		}
		if len(recs) == 0 {
			return nil
		}
		st := t.lines.Stats()
		env := wire.Envelope{Agent: a.cfg.Name, Spool: t.linesID, BootID: a.bootID, Version: a.cfg.Version,
			Sent: time.Now().UTC(), Interval: a.cfg.Interval, Dropped: st.Dropped, Lost: st.Lost,
			Records: make([]wire.Record, 0, len(recs))}
		var size int
		for i, r := range recs {
			if i > 0 && size > linesBatchBytes {
				recs = recs[:i] // the rest go in the next batch
				break
			}
			s, err := decodeSpooled(r.Data)
			if err != nil || s.Kind != wire.KindLines {
				s = spooled{Kind: wire.KindLines, Time: time.Now().UTC()}
				s.Data, _ = json.Marshal(wire.Lines{Lines: []wire.Line{{Time: s.Time, Source: "hinomi", Unit: "hinomi-agent", Priority: 4,
					Text: "hinomi agent: an unreadable record of log lines in its log spool was skipped"}}})
			}
			size += len(s.Data)
			env.Records = append(env.Records, wire.Record{Seq: r.Seq, Kind: s.Kind, Time: s.Time, Data: s.Data})
		}
		reply, err := a.postTo(ctx, t, wire.LinesPath, &env)
		if err != nil {
			if nf := (*refusedError)(nil); errors.As(err, &nf) && nf.status == http.StatusNotFound {
				return errOldTower
			}
			return err
		}
		last := recs[len(recs)-1].Seq
		if reply.Acked < last {
			return fmt.Errorf("tower acknowledged %d of a batch of log lines up to %d", reply.Acked, last)
		}
		if err := t.lines.Ack(last); err != nil {
			return &spoolError{err}
		}
	}
}

// writeEnvelope writes env as JSON, its records' data as it is: they are
// the agent's own JSON, read from its spool (where reading them checked
// them), and encoding/json would scan every byte of them again to compact
// them, a thousand log lines a second.
func writeEnvelope(w io.Writer, env *wire.Envelope) error {
	head := *env
	head.Records = nil
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	b, ok := bytes.CutSuffix(b, []byte(`"records":null}`))
	if !ok {
		return json.NewEncoder(w).Encode(env)
	}
	out := append(b, `"records":[`...)
	for i, r := range env.Records {
		if i > 0 {
			out = append(out, ',')
		}
		at, err := r.Time.MarshalJSON()
		if err != nil {
			return err
		}
		kind, _ := json.Marshal(r.Kind)
		data := r.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		out = strconv.AppendUint(append(out, `{"seq":`...), r.Seq, 10)
		out = append(append(append(out, `,"kind":`...), kind...), `,"time":`...)
		out = append(append(append(out, at...), `,"data":`...), data...)
		out = append(out, '}')
	}
	out = append(out, "]}\n"...)
	_, err = w.Write(out)
	return err
}

// bootTime is when this host booted, to date kernel lines (their own
// clock counts from boot).
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

// kmsgLine makes a shipped line of a /dev/kmsg record
// ("PRI,SEQ,USEC,FLAGS;message", continuation lines after it).
func kmsgLine(rec []byte, boot time.Time) wire.Line {
	l := wire.Line{Source: "kmsg", Unit: "kernel", Priority: -1, Time: time.Now().UTC()}
	head, msg, ok := bytes.Cut(rec, []byte{';'})
	if !ok {
		l.Text = strings.TrimRight(string(rec), "\n")
		return l
	}
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // the rest are KEY=value dictionary lines
	}
	l.Text = string(msg)
	f := bytes.SplitN(head, []byte{','}, 4)
	if len(f) >= 3 {
		if pri, err := strconv.Atoi(string(f[0])); err == nil {
			l.Priority = pri & 7
		}
		if us, err := strconv.ParseInt(string(f[2]), 10, 64); err == nil && !boot.IsZero() {
			l.Time = boot.Add(time.Duration(us) * time.Microsecond).UTC()
		}
	}
	return l
}

// journalEntry is what a shipped line takes of a journal record.
type journalEntry struct {
	Realtime   string          `json:"__REALTIME_TIMESTAMP"`
	Priority   string          `json:"PRIORITY"`
	Unit       string          `json:"_SYSTEMD_UNIT"`
	Identifier string          `json:"SYSLOG_IDENTIFIER"`
	Message    json.RawMessage `json:"MESSAGE"`
	PID        string          `json:"_PID"`
}

// journalLine makes a shipped line of a journal record (journalctl -o json).
func journalLine(rec []byte) (wire.Line, bool) {
	var e journalEntry
	if err := json.Unmarshal(rec, &e); err != nil {
		return wire.Line{}, false
	}
	l := wire.Line{Source: "journal", Unit: e.Unit, Priority: -1, Time: time.Now().UTC()}
	if l.Unit == "" {
		l.Unit = e.Identifier
	}
	if us, err := strconv.ParseInt(e.Realtime, 10, 64); err == nil {
		l.Time = time.UnixMicro(us).UTC()
	}
	if p, err := strconv.Atoi(e.Priority); err == nil && p >= 0 && p <= 7 {
		l.Priority = p
	}
	// MESSAGE is a string, or an array of bytes when it is not UTF-8.
	var msg string
	if err := json.Unmarshal(e.Message, &msg); err != nil {
		var raw []byte
		var nums []int
		if json.Unmarshal(e.Message, &nums) == nil {
			for _, n := range nums {
				raw = append(raw, byte(n))
			}
		}
		msg = strings.ToValidUTF8(string(raw), "\uFFFD")
	}
	l.Text = msg
	if e.Identifier != "" && e.Identifier != l.Unit {
		l.Fields = map[string]string{"program": e.Identifier}
	}
	if e.PID != "" {
		if l.Fields == nil {
			l.Fields = map[string]string{}
		}
		l.Fields["pid"] = e.PID
	}
	return l, true
}

// matchFields are a shipped line's fields when a signature matched it.
func matchFields(sig, mode string) map[string]string {
	if sig == "" {
		return nil
	}
	return map[string]string{"signature": sig, "mode": mode}
}
