// Package spool is the agent's bounded on-disk queue of records for the
// tower. While the tower is unreachable the agent keeps appending; the
// shipper peeks at the oldest records, sends them and acknowledges them,
// and records survive restarts and crashes of the agent, so delivery is at
// least once (the tower dedupes by sequence number). When the bound is hit
// the oldest records are dropped, counted and reported, never the newest.
package spool

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Record is one spooled payload and the sequence number Append gave it.
type Record struct {
	Seq  uint64
	Data []byte
}

// Defaults for Options.
const (
	DefaultMaxBytes    = 64 << 20
	DefaultSegmentSize = 4 << 20
	minMaxBytes        = 1 << 10
)

// Options bound and tune a spool. The zero value takes the defaults.
type Options struct {
	// MaxBytes bounds the total size of the segment files (default
	// DefaultMaxBytes, at least 1 KiB). A record may be at most a
	// quarter of it.
	MaxBytes int64
	// SegmentSize is the size at which appends move to a new segment file
	// (default DefaultSegmentSize or MaxBytes/4 if smaller; at most
	// MaxBytes/2, so the bound can always be met by dropping whole
	// segments).
	SegmentSize int64
	// Sync makes every Append fsync before it returns. Without it an
	// appended record survives a crash of the process but not of the host
	// until Sync, Close or a Peek that hands it out.
	Sync bool
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxBytes < minMaxBytes {
		return o, fmt.Errorf("spool: MaxBytes %d is below the minimum %d", o.MaxBytes, minMaxBytes)
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = min(DefaultSegmentSize, o.MaxBytes/4)
	}
	if o.SegmentSize < 0 || o.SegmentSize > o.MaxBytes/2 {
		return o, fmt.Errorf("spool: SegmentSize %d must be between 1 and MaxBytes/2 (%d)", o.SegmentSize, o.MaxBytes/2)
	}
	return o, nil
}

var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge rejects a record larger than MaxBytes/4.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrNotAppended rejects an Ack of a sequence number not yet appended.
	ErrNotAppended = errors.New("spool: ack of a sequence number not yet appended")
)

// Stats describe a spool. Byte counts are of records as stored: payload
// plus a 16-byte frame header.
type Stats struct {
	Pending      int    // records appended and neither acknowledged nor dropped
	PendingBytes int64  // their size
	Acked        uint64 // highest acknowledged sequence number
	NextSeq      uint64 // sequence number the next Append gets
	Dropped      uint64 // records deleted unacknowledged to keep the bound, ever
	DroppedBytes int64
	Lost         uint64 // records Append could not store because a write failed (a full disk), ever
	LostBytes    int64
	Corrupt      uint64 // damage found (torn or garbled frames, unreadable segment or state files), ever
	CorruptBytes int64  // bytes cut off or deleted because of them
	Segments     int    // segment files
	Bytes        int64  // their total size
}

// segment is what the spool remembers of one segment file.
type segment struct {
	first   uint64 // sequence number in the file name
	last    uint64 // sequence number of the last record; first-1 while empty
	size    int64  // bytes of header and good frames
	durable int64  // bytes known to be fsynced
}

func (g *segment) empty() bool { return g.last < g.first }

// cursor is the position of the first pending record. It may lag (point
// at records <= floor) if the exact offset could not be found; readers
// skip those.
type cursor struct {
	seg *segment // nil: nothing pending
	off int64
	seq uint64
}

// hintEntry remembers where a peeked record ends, so that acknowledging it
// needs no reading.
type hintEntry struct {
	seq uint64
	seg *segment
	end int64
}

// Spool is an on-disk queue of records. It is safe for concurrent use; it
// is built for one goroutine appending and one peeking and acknowledging.
type Spool struct {
	dir       string
	opt       Options
	maxRecord int

	mu        sync.Mutex
	closed    bool
	segs      []*segment // oldest first
	w         *os.File   // the last segment, open for appending; nil: the next Append starts one
	total     int64      // sum of segs' sizes
	next      uint64     // sequence number of the next Append
	st        state      // High is filled in when it is written
	cur       cursor
	hint      []hintEntry
	buf       []byte
	dirGen    uint64 // counts segment files created
	dirSynced uint64 // dirGen at the last fsync of the directory
	stateGen  uint64 // counts snapshots of st taken for writing

	stateMu    sync.Mutex // serializes writes of the state file; taken after mu, never before
	stateSaved uint64     // stateGen of the last state written
}

// Open opens the spool in dir, creating dir if needed, and recovers from a
// crash: damaged tails of segments are cut off and counted in
// Stats.Corrupt, and sequence numbers continue after the highest one ever
// used.
func Open(dir string, o Options) (*Spool, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opt: o, maxRecord: int(o.MaxBytes / 4)}
	if err := s.recover(); err != nil {
		if s.w != nil {
			_ = s.w.Close()
		}
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	return s, nil
}

func (s *Spool) path(first uint64) string { return filepath.Join(s.dir, segName(first)) }

// active is the segment being appended to, or nil.
func (s *Spool) active() *segment {
	if s.w == nil {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// Append stores data as the next record and returns its sequence number.
// data is copied. With Options.Sync, a failed fsync returns the sequence
// number with the error: the record is stored but may not be durable.
func (s *Spool) Append(data []byte) (uint64, error) {
	if len(data) > s.maxRecord {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), s.maxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	size := frameHdrLen + int64(len(data))
	if a := s.active(); a != nil && !a.empty() && a.size+size > s.opt.SegmentSize {
		s.seal()
	}
	need := size
	if s.w == nil {
		need += segHdrLen
	}
	if s.total+need > s.opt.MaxBytes {
		if err := s.makeRoom(need); err != nil {
			return 0, s.lose(size, err)
		}
	}
	if s.w == nil {
		if err := s.startSegment(); err != nil {
			return 0, s.lose(size, err)
		}
	}
	g, seq := s.active(), s.next
	s.buf = appendFrame(s.buf[:0], seq, data)
	if _, err := s.w.WriteAt(s.buf, g.size); err != nil {
		// Cut off whatever part of the frame got written so the segment
		// stays appendable. If that fails too, the torn frame is left for
		// recovery and appends move on to a new segment.
		if terr := s.w.Truncate(g.size); terr != nil {
			s.seal()
		}
		return 0, s.lose(size, fmt.Errorf("spool: append: %w", err))
	}
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not pin the memory of one huge record
	}
	g.size += size
	g.last = seq
	s.total += size
	s.next++
	if s.cur.seg == nil {
		s.cur = cursor{g, g.size - size, seq}
	}
	if s.opt.Sync {
		if err := s.syncLocked(); err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// lose counts a record Append could not store. The count is kept in the
// state file the next time one is written (an Ack, a drop, Close): with
// the disk full that may be only once space returns, but Stats has it at
// once, and the agent tells the tower. s.mu must be held.
func (s *Spool) lose(size int64, err error) error {
	s.st.Lost++
	s.st.LostBytes += uint64(size)
	return err
}

// seal stops appending to the active segment.
func (s *Spool) seal() {
	// The frames are written with write(2); a close error cannot lose them.
	_ = s.w.Close()
	s.w = nil
}

// startSegment creates a segment file for the next record.
func (s *Spool) startSegment() error {
	path := s.path(s.next)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.WriteAt([]byte(segMagic), 0); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	s.w = f
	s.segs = append(s.segs, &segment{first: s.next, last: s.next - 1, size: segHdrLen})
	s.total += segHdrLen
	s.dirGen++
	return nil
}

// makeRoom deletes the oldest segments, acknowledged or not, until need
// more bytes fit under the bound. What it drops unacknowledged is counted
// and persisted before the files go.
func (s *Spool) makeRoom(need int64) error {
	var doomed []*segment
	for s.total+need > s.opt.MaxBytes && len(s.segs) > 0 {
		g := s.segs[0]
		if g == s.active() {
			s.seal()
			need += segHdrLen
		}
		if !g.empty() && g.last > s.st.Floor {
			from := segHdrLen
			if s.cur.seg == g {
				from = s.cur.off
			}
			s.st.Dropped += g.last - max(g.first-1, s.st.Floor)
			s.st.DroppedBytes += uint64(g.size - from)
			s.st.Floor = g.last
		}
		s.total -= g.size
		s.segs = slices.Delete(s.segs, 0, 1)
		doomed = append(doomed, g)
	}
	s.hint = nil
	s.seek()
	// Should the state not be written, delete anyway: the space is needed,
	// and the next state written will carry the counts.
	err := s.saveStateLocked()
	for _, g := range doomed {
		err = errors.Join(err, removeFile(s.path(g.first)))
	}
	return err
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// seek puts the cursor on the first record above the floor.
func (s *Spool) seek() {
	floor := s.st.Floor
	for _, g := range s.segs {
		if g.empty() || g.last <= floor {
			continue
		}
		if floor < g.first {
			s.cur = cursor{g, segHdrLen, g.first}
			return
		}
		s.cur = s.after(g, floor)
		return
	}
	s.cur = cursor{}
}

// after returns the position following record seq of segment g, from the
// last Peek if it can, else by reading g. If reading fails it returns an
// earlier position; readers skip what lies below the floor.
func (s *Spool) after(g *segment, seq uint64) cursor {
	if i, ok := slices.BinarySearchFunc(s.hint, seq, func(h hintEntry, seq uint64) int {
		return cmp.Compare(h.seq, seq)
	}); ok && s.hint[i].seg == g {
		return cursor{g, s.hint[i].end, seq + 1}
	}
	from := cursor{g, segHdrLen, g.first}
	if s.cur.seg == g && s.cur.seq <= seq+1 {
		from = s.cur
	}
	f, err := os.Open(s.path(g.first))
	if err != nil {
		return from
	}
	defer f.Close()
	sc := scanner{r: f, off: from.off, end: g.size, seq: from.seq, chunk: 256 << 10}
	for sc.seq <= seq {
		if _, _, _, err := sc.next(); err != nil {
			return from
		}
	}
	return cursor{g, sc.off, sc.seq}
}

// Peek returns the oldest pending records in order: at most maxRecords of
// them (no limit if maxRecords <= 0) and, unless the first alone is
// larger, at most maxBytes of payload (no limit if maxBytes <= 0). It does
// not remove them; Ack does. Records are fsynced before they are
// returned, so none that left the host can vanish in a power loss and its
// sequence number be used again.
func (s *Spool) Peek(maxRecords, maxBytes int) ([]Record, error) {
	// Each retry follows a change that moved the cursor on (a drop, an
	// Ack, a damaged frame cut off); 100 in a row cannot happen.
	for range 100 {
		recs, retry, err := s.peek(maxRecords, maxBytes)
		if !retry {
			return recs, err
		}
	}
	return nil, errors.New("spool: peek: segments keep changing")
}

// segView is a segment as a Peek saw it under the lock.
type segView struct {
	seg        *segment
	start, end int64
	seq, last  uint64 // of the records at start and before end
	durable    int64
	synced     bool // fsynced by this Peek
}

// readAhead guesses how much of v to read at once to find maxRecords or
// maxBytes of payload (<= 0: no limit), assuming records of even size, so
// that a small Peek neither reads nor pins a large buffer.
func (v *segView) readAhead(maxRecords, maxBytes int) int {
	want := v.end - v.start
	if n := int64(v.last - v.seq + 1); maxRecords > 0 && int64(maxRecords) < n {
		want = want/n*int64(maxRecords) + want/n/4 + frameHdrLen
	}
	if maxBytes > 0 {
		want = min(want, int64(maxBytes)+frameHdrLen)
	}
	return int(min(max(want, 4<<10), 1<<20))
}

// peek is one attempt at Peek. It reads without holding the lock; retry
// says the segments changed under it and it should start again.
func (s *Spool) peek(maxRecords, maxBytes int) (recs []Record, retry bool, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false, ErrClosed
	}
	if s.cur.seg == nil {
		s.mu.Unlock()
		return nil, false, nil
	}
	floor, dirGen, dirDirty := s.st.Floor, s.dirGen, s.dirGen > s.dirSynced
	var views []segView
	for _, g := range s.segs[slices.Index(s.segs, s.cur.seg):] {
		if !g.empty() {
			views = append(views, segView{seg: g, start: segHdrLen, end: g.size, seq: g.first, last: g.last, durable: g.durable})
		}
	}
	views[0].start, views[0].seq = s.cur.off, s.cur.seq
	s.mu.Unlock()

	var hint []hintEntry
	payload, full := 0, false
	i := 0
	for ; i < len(views) && !full; i++ {
		v := &views[i]
		f, err := os.Open(s.path(v.seg.first))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, true, nil // dropped or acknowledged meanwhile
		}
		if err != nil {
			return nil, false, fmt.Errorf("spool: %w", err)
		}
		leftRecords, leftBytes := 0, 0
		if maxRecords > 0 {
			leftRecords = max(maxRecords-len(recs), 1)
		}
		if maxBytes > 0 {
			leftBytes = max(maxBytes-payload, 1)
		}
		sc := scanner{r: f, off: v.start, end: v.end, seq: v.seq, chunk: v.readAhead(leftRecords, leftBytes)}
		for !full {
			seq, p, _, err := sc.next()
			if err == io.EOF {
				break
			}
			if errors.Is(err, errBadFrame) && len(recs) > 0 {
				// Hand out what came before it; the next Peek starts
				// at the damage and deals with it.
				full = true
				break
			}
			if err != nil {
				_ = f.Close()
				if !errors.Is(err, errBadFrame) {
					return nil, false, fmt.Errorf("spool: read %s: %w", segName(v.seg.first), err)
				}
				if err := s.cut(v.seg, sc.off, sc.seq); err != nil {
					return nil, false, err
				}
				return nil, true, nil
			}
			if seq <= floor {
				continue
			}
			if maxBytes > 0 && len(recs) > 0 && payload+len(p) > maxBytes {
				full = true
				break
			}
			recs = append(recs, Record{Seq: seq, Data: p})
			hint = append(hint, hintEntry{seq, v.seg, sc.off})
			payload += len(p)
			full = maxRecords > 0 && len(recs) >= maxRecords
		}
		if v.synced = sc.off > v.durable; v.synced {
			if err := f.Sync(); err != nil {
				_ = f.Close()
				return nil, false, fmt.Errorf("spool: %w", err)
			}
		}
		_ = f.Close()
	}
	return s.peeked(recs, hint, views[:i], dirGen, dirDirty)
}

// peeked finishes a Peek: it makes the directory durable if needed,
// records what was fsynced and drops records acknowledged or dropped while
// it read.
func (s *Spool) peeked(recs []Record, hint []hintEntry, synced []segView, dirGen uint64, dirDirty bool) ([]Record, bool, error) {
	if dirDirty && len(recs) > 0 {
		if err := syncDir(s.dir); err != nil {
			return nil, false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range synced {
		if v.synced && v.seg.durable < v.end {
			v.seg.durable = v.end
		}
	}
	if dirDirty && len(recs) > 0 && s.dirSynced < dirGen {
		s.dirSynced = dirGen
	}
	i := 0
	for i < len(recs) && recs[i].Seq <= s.st.Floor {
		i++
	}
	recs, hint = recs[i:], hint[i:]
	if len(recs) == 0 {
		return nil, false, nil
	}
	s.hint = hint
	return recs, false, nil
}

// cut truncates segment g at off, where a Peek found a damaged frame that
// should have had sequence number seq.
func (s *Spool) cut(g *segment, off int64, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !slices.Contains(s.segs, g) || g.last < seq || off >= g.size {
		return nil // changed meanwhile; look again
	}
	if g == s.active() {
		s.seal()
	}
	if err := os.Truncate(s.path(g.first), off); err != nil {
		return fmt.Errorf("spool: cut damaged segment: %w", err)
	}
	lost := g.size - off
	s.st.Corrupt++
	s.st.CorruptBytes += uint64(lost)
	s.total -= lost
	g.size, g.last, g.durable = off, seq-1, min(g.durable, off)
	var err error
	if g.empty() {
		s.segs = slices.DeleteFunc(s.segs, func(x *segment) bool { return x == g })
		s.total -= g.size
		err = removeFile(s.path(g.first))
	}
	s.hint = nil
	s.seek()
	return errors.Join(err, s.saveStateLocked())
}

// Ack records that every record up to seq was delivered. It persists that
// before it returns and deletes the segment files no longer needed.
// Acknowledging an already acknowledged seq does nothing.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if seq >= s.next {
		s.mu.Unlock()
		return fmt.Errorf("%w: %d (last appended %d)", ErrNotAppended, seq, s.next-1)
	}
	if seq <= s.st.Acked {
		s.mu.Unlock()
		return nil
	}
	s.st.Acked = seq
	if seq > s.st.Floor {
		s.st.Floor = seq
		s.seek()
	}
	floor := s.st.Floor
	st, gen := s.snapshotState()
	s.mu.Unlock()

	// Written outside the lock: the fsyncs must not hold up Append.
	if err := s.saveState(st, gen); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var err error
	for len(s.segs) > 0 && s.segs[0] != s.active() && s.segs[0].last <= floor {
		g := s.segs[0]
		s.segs = slices.Delete(s.segs, 0, 1)
		s.total -= g.size
		err = errors.Join(err, removeFile(s.path(g.first)))
	}
	// The active segment stays even when fully acknowledged: it holds the
	// highest sequence number, which Open must find.
	return err
}

// snapshotState takes the state to write. s.mu must be held.
func (s *Spool) snapshotState() (state, uint64) {
	st := s.st
	st.High = s.next - 1
	s.stateGen++
	return st, s.stateGen
}

// saveState writes st unless a later snapshot was written already.
func (s *Spool) saveState(st state, gen uint64) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if gen <= s.stateSaved {
		return nil
	}
	if err := writeStateFile(s.dir, st); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.stateSaved = gen
	return nil
}

func (s *Spool) saveStateLocked() error { return s.saveState(s.snapshotState()) }

// Sync fsyncs every record appended so far.
func (s *Spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.syncLocked()
}

func (s *Spool) syncLocked() error {
	for _, g := range s.segs {
		if g.durable >= g.size {
			continue
		}
		var err error
		if g == s.active() {
			err = s.w.Sync()
		} else {
			err = syncPath(s.path(g.first))
		}
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		g.durable = g.size
	}
	if s.dirGen > s.dirSynced {
		if err := syncDir(s.dir); err != nil {
			return err
		}
		s.dirSynced = s.dirGen
	}
	return nil
}

// Stats returns counts for monitoring and for telling the tower what was
// lost.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Acked:        s.st.Acked,
		NextSeq:      s.next,
		Dropped:      s.st.Dropped,
		DroppedBytes: int64(s.st.DroppedBytes),
		Lost:         s.st.Lost,
		LostBytes:    int64(s.st.LostBytes),
		Corrupt:      s.st.Corrupt,
		CorruptBytes: int64(s.st.CorruptBytes),
		Segments:     len(s.segs),
		Bytes:        s.total,
	}
	reached := false
	for _, g := range s.segs {
		if !g.empty() && g.last > s.st.Floor {
			st.Pending += int(g.last - max(g.first-1, s.st.Floor))
		}
		switch {
		case g == s.cur.seg:
			reached = true
			st.PendingBytes += g.size - s.cur.off
		case reached:
			st.PendingBytes += g.size - segHdrLen
		}
	}
	return st
}

// Close fsyncs and closes the spool.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	err := s.syncLocked()
	if s.w != nil {
		s.seal()
	}
	s.closed = true
	return errors.Join(err, s.saveStateLocked())
}
