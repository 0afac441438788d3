package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Embedded is the store in a directory of the tower's data dir: a
// write-ahead log for what is not yet in a block (wal.go), and segment files
// of compressed, indexed blocks (segment.go), dropped whole by retention.
//
// An Append is in the WAL, fsync'd, when it returns. A disk that is full
// makes Append fail with an error that errors.Is(err, syscall.ENOSPC)
// recognises; nothing is kept of that Append.
type Embedded struct {
	dir  string
	opts Options
	cfg  config
	log  *slog.Logger
	now  func() time.Time
	dec  *zstd.Decoder
	lock *os.File

	syncMu sync.Mutex // one WAL fsync at a time; the others wait and share it

	mu        sync.RWMutex
	closed    bool
	blocks    []blockMeta // oldest segment first; replaced, never changed in place
	segs      []segInfo
	cur       *os.File // the segment blocks go to; nil: start a new one
	nextSeq   uint64
	head      []Entry // the entries in the WAL, not yet in a block
	headBytes int
	wal       *os.File // nil after a failed rotation: the next Append makes one
	walGen    uint64
	walSize   int64
	walSynced int64
	lastGen   uint64 // the newest WAL generation in a block
	flushErr  error
	retryAt   time.Time // after a failed flush, the next try (wall clock)
	order     int
	dropped   int64
	builder   blockBuilder

	invalid, cut atomic.Int64
}

// config holds the sizes of blocks and segments (tests make them small).
type config struct {
	blockLines   int
	blockBytes   int
	segmentBytes int64
	headCap      int // lines kept waiting when blocks cannot be written
}

func defaultConfig(opts Options) config {
	c := config{blockLines: 8192, blockBytes: 2 << 20, segmentBytes: 64 << 20}
	if opts.MaxBytes > 0 {
		// Retention drops whole segments: keep each a small part of the limit.
		c.segmentBytes = min(c.segmentBytes, max(opts.MaxBytes/8, 64<<10))
	}
	c.headCap = 8 * c.blockLines
	return c
}

type segInfo struct {
	seq        uint64
	size       int64
	lines      int64
	minT, maxT int64
}

const retentionFile = "retention-dropped"

// OpenEmbedded opens (creating it if needed) the embedded store in dir.
func OpenEmbedded(dir string, opts Options) (Store, error) {
	return openEmbedded(dir, opts, defaultConfig(opts))
}

func openEmbedded(dir string, opts Options, cfg config) (*Embedded, error) {
	s := &Embedded{dir: dir, opts: opts, cfg: cfg, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("logstore: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logstore: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("logstore: %s is in use by another process: %w", dir, err)
	}
	s.lock = lock
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("logstore: %w", err)
	}
	s.builder.enc = enc
	s.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxBlockPart))
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("logstore: %w", err)
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// recover reads the segments, cuts a torn tail, replays the WAL into
// blocks and starts a new WAL.
func (s *Embedded) recover() error {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("logstore: %w", err)
	}
	var segSeqs, walGens []uint64
	for _, n := range names {
		name := n.Name()
		if strings.HasSuffix(name, ".seg") {
			if seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 16, 64); err == nil {
				segSeqs = append(segSeqs, seq)
			}
		} else if strings.HasPrefix(name, "wal-") && strings.HasSuffix(name, ".log") {
			if gen, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "wal-"), ".log"), 16, 64); err == nil {
				walGens = append(walGens, gen)
			}
		}
	}
	slices.Sort(segSeqs)
	slices.Sort(walGens)
	if b, err := os.ReadFile(filepath.Join(s.dir, retentionFile)); err == nil {
		s.dropped, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}

	for i, seq := range segSeqs {
		path := filepath.Join(s.dir, segmentName(seq))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("logstore: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("logstore: %w", err)
		}
		metas, good, err := scanSegment(f, st.Size(), seq)
		if err != nil {
			if i == len(segSeqs)-1 {
				// A block torn by a crash: it was never acknowledged as a
				// block (its lines are still in the WAL).
				s.log.Warn("log store: cutting a torn block at the end of a segment", "segment", path, "at", good, "size", st.Size(), "err", err)
				if err := f.Truncate(good); err != nil {
					f.Close()
					return fmt.Errorf("logstore: cutting the torn end of %s: %w", path, err)
				}
			} else {
				s.log.Error("log store: a damaged segment; its blocks after the damage are not read", "segment", path, "at", good, "err", err)
			}
		}
		f.Close()
		si := segInfo{seq: seq, size: good}
		for j := range metas {
			m := &metas[j]
			m.order = s.order
			s.order++
			s.addToSeg(&si, m)
			s.lastGen = max(s.lastGen, m.walGen)
		}
		s.blocks = append(s.blocks, metas...)
		s.segs = append(s.segs, si)
		s.nextSeq = seq + 1
	}

	// The WAL generations newer than the last block's hold what is not in
	// a block yet; older ones were flushed.
	var replayed []string
	for _, gen := range walGens {
		path := filepath.Join(s.dir, walName(gen))
		s.walGen = max(s.walGen, gen)
		if gen <= s.lastGen {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("logstore: %w", err)
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("logstore: %w", err)
		}
		good, err := readWAL(b, func(entries []Entry) {
			s.head = append(s.head, entries...)
		})
		if err != nil {
			s.log.Warn("log store: cutting a torn record at the end of the write-ahead log", "wal", path, "at", good, "size", len(b), "err", err)
		}
		replayed = append(replayed, path)
	}
	s.walGen = max(s.walGen, s.lastGen)
	for _, e := range s.head {
		s.headBytes += len(e.Line)
	}
	if len(s.head) > 0 {
		if err := s.writeBlocks(); err != nil {
			return err
		}
	}
	if err := s.newWAL(); err != nil {
		return err
	}
	for _, p := range replayed {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("logstore: %w", err)
		}
	}
	if len(s.segs) > 0 {
		last := s.segs[len(s.segs)-1]
		if last.size < s.cfg.segmentBytes {
			f, err := os.OpenFile(filepath.Join(s.dir, segmentName(last.seq)), os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("logstore: %w", err)
			}
			s.cur = f
		}
	}
	s.enforceRetention()
	return nil
}

func (s *Embedded) addToSeg(si *segInfo, m *blockMeta) {
	if si.lines == 0 || m.minT < si.minT {
		si.minT = m.minT
	}
	if si.lines == 0 || m.maxT > si.maxT {
		si.maxT = m.maxT
	}
	si.lines += int64(m.count)
}

// newWAL starts the next WAL generation. Everything in earlier ones is in
// blocks by now.
func (s *Embedded) newWAL() error {
	gen := s.walGen + 1
	f, err := os.OpenFile(filepath.Join(s.dir, walName(gen)), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o640)
	if err != nil {
		return s.diskErr("starting the write-ahead log", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return s.diskErr("starting the write-ahead log", err)
	}
	old := s.wal
	s.wal, s.walGen, s.walSize, s.walSynced = f, gen, 0, 0
	if old != nil {
		old.Close()
		if err := os.Remove(old.Name()); err != nil {
			s.log.Warn("log store: removing a flushed write-ahead log", "err", err)
		}
	}
	return nil
}

func (s *Embedded) diskErr(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("logstore: the disk of %s is full (%s): %w", s.dir, what, err)
	}
	return fmt.Errorf("logstore: %s in %s: %w", what, s.dir, err)
}

// Append stores entries: when it returns nil they are in the fsync'd WAL.
func (s *Embedded) Append(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return ctx.Err()
	}
	clean := make([]Entry, len(entries))
	bytes := 0
	for i, e := range entries {
		var invalid, cut bool
		clean[i], invalid, cut = sanitize(e, s.now)
		if invalid {
			s.invalid.Add(1)
		}
		if cut {
			s.cut.Add(1)
		}
		bytes += len(clean[i].Line)
	}
	rec := appendWALRecord(nil, clean)
	if len(rec) > maxWALRecord {
		return fmt.Errorf("logstore: an Append of %d bytes is over the limit of %d: send fewer lines at a time", len(rec), maxWALRecord)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("logstore: the store is closed")
	}
	if len(s.head) >= s.cfg.headCap {
		err := s.flushErr
		s.mu.Unlock()
		return fmt.Errorf("logstore: %d lines wait for a block that cannot be written: %w", s.cfg.headCap, err)
	}
	if s.wal == nil {
		if err := s.newWAL(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	if _, err := s.wal.WriteAt(rec, s.walSize); err != nil {
		// Nothing of this Append is kept: cut what part of it was written.
		if terr := s.wal.Truncate(s.walSize); terr != nil {
			s.log.Error("log store: cutting a failed write from the write-ahead log", "err", terr)
		}
		s.mu.Unlock()
		return s.diskErr("writing the write-ahead log", err)
	}
	s.walSize += int64(len(rec))
	gen, end, wal := s.walGen, s.walSize, s.wal
	s.head = append(s.head, clean...)
	s.headBytes += bytes
	if (len(s.head) >= s.cfg.blockLines || s.headBytes >= s.cfg.blockBytes) && (s.flushErr == nil || !time.Now().Before(s.retryAt)) {
		s.flushLocked()
	}
	s.mu.Unlock()
	return s.syncWAL(wal, gen, end)
}

// syncWAL returns when the WAL of generation gen is durable up to end:
// after an fsync of its own, or one another Append made meanwhile, or the
// flush of the WAL into a block.
func (s *Embedded) syncWAL(f *os.File, gen uint64, end int64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.RLock()
	done := s.walGen != gen || s.walSynced >= end
	target := s.walSize
	s.mu.RUnlock()
	if done {
		return nil
	}
	err := f.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.walGen != gen {
		return nil // flushed into a block (fsync'd) meanwhile
	}
	if err != nil {
		return s.diskErr("syncing the write-ahead log", err)
	}
	s.walSynced = max(s.walSynced, target)
	return nil
}

// flushLocked writes the head as blocks; on failure the lines stay in the
// head and the WAL, and a later Append tries again.
func (s *Embedded) flushLocked() {
	if err := s.writeBlocks(); err != nil {
		if s.flushErr == nil {
			s.log.Error("log store: writing a block", "err", err)
		}
		// Each try compresses the whole head again: not more than once a
		// second while the disk stays full.
		s.flushErr, s.retryAt = err, time.Now().Add(time.Second)
		return
	}
	s.flushErr = nil
	if err := s.newWAL(); err != nil {
		// The blocks hold the lines; the next Append retries the WAL.
		s.log.Error("log store: starting the write-ahead log", "err", err)
		s.wal = nil
	}
	s.enforceRetention()
}

// writeBlocks writes the head as blocks to the current segment, fsync'd;
// all or nothing.
func (s *Embedded) writeBlocks() error {
	if len(s.head) == 0 {
		return nil
	}
	created := false
	if s.cur != nil && len(s.segs) > 0 && s.segs[len(s.segs)-1].size >= s.cfg.segmentBytes {
		s.cur.Close()
		s.cur = nil
	}
	if s.cur == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, segmentName(s.nextSeq)), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o640)
		if err != nil {
			return s.diskErr("starting a segment", err)
		}
		s.cur = f
		s.segs = append(s.segs, segInfo{seq: s.nextSeq})
		s.nextSeq++
		created = true
	}
	si := &s.segs[len(s.segs)-1]
	start := si.size
	sorted := slices.Clone(s.head)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.Before(sorted[j].Time) })

	var metas []blockMeta
	off := start
	fail := func(err error) error {
		if terr := s.cur.Truncate(start); terr != nil {
			s.log.Error("log store: cutting a failed block", "err", terr)
		}
		if created {
			s.cur.Close()
			os.Remove(s.cur.Name())
			s.cur = nil
			s.segs = s.segs[:len(s.segs)-1]
			s.nextSeq--
		}
		return s.diskErr("writing a block", err)
	}
	for i := 0; i < len(sorted); {
		j, n := i, 0
		for j < len(sorted) && j-i < s.cfg.blockLines && n < s.cfg.blockBytes {
			n += len(sorted[j].Line) + 64
			j++
		}
		buf, m := s.builder.build(sorted[i:j], s.walGen)
		if _, err := s.cur.WriteAt(buf, off); err != nil {
			return fail(err)
		}
		m.seg, m.off = si.seq, off
		m.bloomOff += off
		metas = append(metas, m)
		off += int64(len(buf))
		i = j
	}
	if err := s.cur.Sync(); err != nil {
		return fail(err)
	}
	if created {
		if err := syncDir(s.dir); err != nil {
			return fail(err)
		}
	}
	blocks := slices.Clip(s.blocks)
	for i := range metas {
		metas[i].order = s.order
		s.order++
		s.lastGen = max(s.lastGen, metas[i].walGen)
		s.addToSeg(si, &metas[i])
	}
	si.size = off
	s.blocks = append(blocks, metas...)
	s.head, s.headBytes = nil, 0
	return nil
}

// enforceRetention drops whole segments: those whose newest line is older
// than MaxAge, then the oldest while the store is over MaxBytes.
func (s *Embedded) enforceRetention() {
	if s.opts.MaxAge <= 0 && s.opts.MaxBytes <= 0 {
		return
	}
	var drop []uint64
	keep := s.segs[:0:0]
	if s.opts.MaxAge > 0 {
		cutoff := s.now().Add(-s.opts.MaxAge).UnixNano()
		for _, si := range s.segs {
			if si.lines > 0 && si.maxT < cutoff {
				drop = append(drop, si.seq)
			} else {
				keep = append(keep, si)
			}
		}
	} else {
		keep = append(keep, s.segs...)
	}
	if s.opts.MaxBytes > 0 {
		total := s.walSize
		for _, si := range keep {
			total += si.size
		}
		for len(keep) > 1 && total > s.opts.MaxBytes {
			total -= keep[0].size
			drop = append(drop, keep[0].seq)
			keep = keep[1:]
		}
	}
	if len(drop) == 0 {
		return
	}
	dropSet := map[uint64]bool{}
	for _, seq := range drop {
		dropSet[seq] = true
		if s.cur != nil && s.cur.Name() == filepath.Join(s.dir, segmentName(seq)) {
			s.cur.Close()
			s.cur = nil
		}
		if err := os.Remove(filepath.Join(s.dir, segmentName(seq))); err != nil {
			s.log.Error("log store: removing a segment for retention", "err", err)
		}
	}
	var lines int64
	for _, si := range s.segs {
		if dropSet[si.seq] {
			lines += si.lines
		}
	}
	blocks := make([]blockMeta, 0, len(s.blocks))
	for _, b := range s.blocks {
		if !dropSet[b.seg] {
			blocks = append(blocks, b)
		}
	}
	s.blocks = blocks
	s.segs = slices.Clone(keep)
	s.dropped += lines
	s.log.Info("log store: retention dropped segments", "segments", len(drop), "lines", lines)
	tmp := filepath.Join(s.dir, retentionFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(s.dropped, 10)+"\n"), 0o640); err == nil {
		if err := os.Rename(tmp, filepath.Join(s.dir, retentionFile)); err != nil {
			s.log.Warn("log store: saving the count of dropped lines", "err", err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		s.log.Warn("log store: syncing the directory after retention", "err", err)
	}
}

// Stats describes what the store holds.
func (s *Embedded) Stats(ctx context.Context) (Stats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{RetentionDropped: s.dropped, InvalidUTF8: s.invalid.Load(), CutLines: s.cut.Load(), DiskBytes: s.walSize}
	var lo, hi int64
	seen := false
	see := func(a, b int64) {
		if !seen || a < lo {
			lo = a
		}
		if !seen || b > hi {
			hi = b
		}
		seen = true
	}
	for _, si := range s.segs {
		st.Lines += si.lines
		st.DiskBytes += si.size
		if si.lines > 0 {
			see(si.minT, si.maxT)
		}
	}
	for _, e := range s.head {
		st.Lines++
		t := e.Time.UnixNano()
		see(t, t)
	}
	if seen {
		st.Oldest, st.Newest = time.Unix(0, lo).UTC(), time.Unix(0, hi).UTC()
	}
	return st, ctx.Err()
}

// Close writes what waits in the WAL as blocks and closes the files.
func (s *Embedded) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if len(s.head) > 0 {
		if err = s.writeBlocks(); err == nil {
			err = s.newWAL()
		}
	}
	s.closeFiles()
	return err
}

func (s *Embedded) closeFiles() {
	for _, c := range []io.Closer{s.cur, s.wal} {
		if f, ok := c.(*os.File); ok && f != nil {
			f.Close()
		}
	}
	if s.builder.enc != nil {
		s.builder.enc.Close()
	}
	if s.dec != nil {
		s.dec.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}
