package logstore

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Search calls fn for each matching entry in time order (Newest: reverse)
// until fn returns false or Limit entries.
//
// Blocks are sorted by their first time (Newest: their last) and opened
// lazily: before an entry of time t is passed on, every block that may hold
// an earlier one has been read, so blocks whose times overlap (lines that
// arrived late) still come out in order.
func (s *Embedded) Search(ctx context.Context, q Query, fn func(Entry) bool) error {
	m, err := compile(q)
	if err != nil {
		return err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errors.New("logstore: the store is closed")
	}
	all := s.blocks
	head := s.head[:len(s.head):len(s.head)]
	headOrder := s.order
	s.mu.RUnlock()

	var cands []*blockMeta
	for i := range all {
		if m.blockMayMatch(&all[i]) {
			cands = append(cands, &all[i])
		}
	}
	if q.Newest {
		sort.Slice(cands, func(i, j int) bool {
			if cands[i].maxT != cands[j].maxT {
				return cands[i].maxT > cands[j].maxT
			}
			return cands[i].order > cands[j].order
		})
	} else {
		sort.Slice(cands, func(i, j int) bool {
			if cands[i].minT != cands[j].minT {
				return cands[i].minT < cands[j].minT
			}
			return cands[i].order < cands[j].order
		})
	}

	r := &blockReader{s: s, m: m, limit: limit, newest: q.Newest, files: map[uint64]*os.File{}}
	defer r.close()
	// Blocks are read ahead, several at a time, in the order they are
	// needed; what is read beyond the limit is thrown away.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	sem := make(chan struct{}, workers)
	results := make([]chan blockResult, len(cands))
	dispatched := 0
	readAhead := func(upto int) {
		for ; dispatched < min(upto, len(cands)); dispatched++ {
			j := dispatched
			results[j] = make(chan blockResult, 1)
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := ctx.Err(); err != nil {
					results[j] <- blockResult{err: err}
					return
				}
				run, err := r.blockRun(cands[j], q.Newest)
				results[j] <- blockResult{run, err}
			})
		}
	}
	h := &runHeap{newest: q.Newest}
	if run := r.headRun(head, headOrder, q.Newest); len(run.entries) > 0 {
		heap.Push(h, run)
	}
	// bound is the time a block must reach to be opened before the top.
	bound := func(b *blockMeta) int64 {
		if q.Newest {
			return b.maxT
		}
		return b.minT
	}
	before := func(a, b int64) bool { // a comes no later than b
		if q.Newest {
			return a >= b
		}
		return a <= b
	}
	next, sent := 0, 0
	for sent < limit {
		for next < len(cands) && (h.Len() == 0 || before(bound(cands[next]), h.top().entries[h.top().pos].Time.UnixNano())) {
			if err := ctx.Err(); err != nil {
				return err
			}
			readAhead(next + 2*workers)
			res := <-results[next]
			if res.err != nil {
				return res.err
			}
			if len(res.run.entries) > 0 {
				heap.Push(h, res.run)
			}
			next++
		}
		if h.Len() == 0 {
			return nil
		}
		top := h.top()
		e := top.entries[top.pos]
		top.pos++
		if top.pos == len(top.entries) {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
		sent++
		if !fn(e) {
			return nil
		}
	}
	return nil
}

// blockReader reads candidate blocks for one search, from several
// goroutines.
type blockReader struct {
	s       *Embedded
	m       *matcher
	limit   int
	newest  bool
	mu      sync.Mutex
	files   map[uint64]*os.File
	scratch sync.Pool // *scratch
}

type scratch struct {
	raw, fold, lower []byte
	view             blockView
	cand             []int
	hits             []rawEntry
	strs             map[string]string
}

func (r *blockReader) close() {
	for _, f := range r.files {
		if f != nil {
			f.Close()
		}
	}
}

func (r *blockReader) file(seq uint64) (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.files[seq]; ok {
		return f, nil
	}
	f, err := os.Open(filepath.Join(r.s.dir, segmentName(seq)))
	if errors.Is(err, fs.ErrNotExist) {
		f, err = nil, nil // dropped by retention since the search began
	}
	r.files[seq] = f
	return f, err
}

// blockRun returns the matching entries of a block, in the search's order.
func (r *blockReader) blockRun(b *blockMeta, newest bool) (*run, error) {
	f, err := r.file(b.seg)
	if err != nil || f == nil {
		return &run{}, err
	}
	if len(r.m.tokens) > 0 {
		bl, err := readBloomAt(f, b)
		if err != nil {
			r.s.log.Error("log store: a damaged block is left out of a search", "segment", f.Name(), "offset", b.off, "err", err)
			return &run{}, nil
		}
		for _, h := range r.m.tokens {
			if !bl.has(h) {
				return &run{}, nil
			}
		}
	}
	sc, _ := r.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer r.scratch.Put(sc)
	data, err := readBlockData(f, b)
	if err == nil {
		sc.raw, err = decodeBlock(r.s.dec, data, sc.raw, b)
	}
	if err == nil {
		err = sc.view.parse(sc.raw)
	}
	out := &run{order: b.order}
	if err == nil {
		err = r.matchBlock(sc, out)
	}
	if err != nil {
		r.s.log.Error("log store: a damaged block is left out of a search", "segment", f.Name(), "offset", b.off, "err", err)
		return &run{}, nil
	}
	if newest {
		reverse(out.entries)
	}
	return out, nil
}

// matchBlock appends the block's matching entries to out. With a lead
// term it scans the block's text for it first and decodes the meta of the
// lines that hold it only.
func (r *blockReader) matchBlock(sc *scratch, out *run) error {
	v := &sc.view
	var cand []int
	if lead := r.m.lead; lead != nil {
		sc.fold = foldASCII(sc.fold, v.text)
		cand = sc.cand[:0]
		text := sc.fold
		off := 0
		line := 0
		for off < len(text) {
			i := bytes.Index(text[off:], lead.lower)
			if i < 0 {
				break
			}
			i += off
			for v.ends[line] <= i {
				line++
			}
			start := 0
			if line > 0 {
				start = v.ends[line-1]
			}
			end := i + len(lead.lower)
			l := text[start:v.ends[line]]
			if end <= v.ends[line] && (!lead.edgeBefore || tokenBoundaryBefore(l, i-start)) && (!lead.edgeAfter || tokenBoundaryAfter(l, end-start)) {
				cand = append(cand, line)
				off = v.ends[line] // one hit a line is enough
				line++
				continue
			}
			off = i + 1
		}
		sc.cand = cand
		if len(cand) == 0 {
			return nil
		}
	}
	d := decoder{b: v.meta}
	var e rawEntry
	var ok bool
	next := 0
	hits := sc.hits[:0]
	for i := range v.n {
		if !d.rawMeta(&e) {
			return d.err
		}
		if cand != nil {
			if next == len(cand) {
				break
			}
			if cand[next] != i {
				continue
			}
			next++
		}
		e.seq = i
		e.line = v.line(i)
		if ok, sc.lower = r.m.match(&e, sc.lower); ok {
			hits = append(hits, e)
		}
	}
	sc.hits = hits
	// A block gives at most limit lines to a search: the first ones, or
	// the last ones newest first.
	if len(hits) > r.limit {
		if r.newest {
			hits = hits[len(hits)-r.limit:]
		} else {
			hits = hits[:r.limit]
		}
	}
	out.entries = make([]Entry, len(hits))
	for i := range hits {
		h := &hits[i]
		out.entries[i] = Entry{Time: time.Unix(0, h.t).UTC(), Host: sc.intern(h.host), Source: sc.intern(h.source),
			Unit: sc.intern(h.unit), Priority: h.priority, Line: string(h.line), Fields: h.fieldMap()}
	}
	return nil
}

// intern returns b as a string, one copy for all the lines of a search
// that share it (hosts, units, sources).
func (sc *scratch) intern(b []byte) string {
	if s, ok := sc.strs[string(b)]; ok {
		return s
	}
	if sc.strs == nil || len(sc.strs) > 4096 {
		sc.strs = make(map[string]string)
	}
	s := string(b)
	sc.strs[s] = s
	return s
}

// headRun returns the matching entries not yet in a block, sorted.
func (r *blockReader) headRun(head []Entry, order int, newest bool) *run {
	out := &run{order: order}
	var raw rawEntry
	var ok bool
	var lower []byte
	for i := range head {
		e := &head[i]
		raw = rawEntry{t: e.Time.UnixNano(), host: []byte(e.Host), unit: []byte(e.Unit), source: []byte(e.Source), priority: e.Priority, line: []byte(e.Line)}
		if ok, lower = r.m.match(&raw, lower); ok {
			out.entries = append(out.entries, *e)
		}
	}
	sort.SliceStable(out.entries, func(i, j int) bool { return out.entries[i].Time.Before(out.entries[j].Time) })
	if newest {
		reverse(out.entries)
	}
	return out
}

func reverse(es []Entry) {
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
}

type blockResult struct {
	run *run
	err error
}

// run is the matching entries of one block, in order, and the next to send.
type run struct {
	entries []Entry
	pos     int
	order   int
}

type runHeap struct {
	runs   []*run
	newest bool
}

func (h *runHeap) Len() int { return len(h.runs) }
func (h *runHeap) Less(i, j int) bool {
	a, b := h.runs[i], h.runs[j]
	ta, tb := a.entries[a.pos].Time, b.entries[b.pos].Time
	if !ta.Equal(tb) {
		return ta.Before(tb) != h.newest
	}
	return (a.order < b.order) != h.newest
}
func (h *runHeap) Swap(i, j int) { h.runs[i], h.runs[j] = h.runs[j], h.runs[i] }
func (h *runHeap) Push(x any)    { h.runs = append(h.runs, x.(*run)) }
func (h *runHeap) Pop() any {
	x := h.runs[len(h.runs)-1]
	h.runs = h.runs[:len(h.runs)-1]
	return x
}
func (h *runHeap) top() *run { return h.runs[0] }
