package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A position file says how far a log reader got (the kernel log's
// sequence number, the journal's cursor), so that a restarted agent
// neither re-sends what it sent nor skips what it did not. It is replaced
// whole: an agent killed at any point leaves the old position or the new
// one, never an empty or half-written file (which would re-send the whole
// kernel ring buffer as duplicates).

// positionEvery bounds how often a reader writes its position for lines
// that matched nothing: re-reading those after a crash sends nothing, and
// a replayed ring buffer of thousands of lines must not cost a sync each.
const positionEvery = 5 * time.Second

// writeFileAtomic replaces path with data: written to a temporary file
// beside it, synced, renamed over it, and the directory synced. Only one
// goroutine writes a given path (the temporary name is fixed, so a crash
// leaves at most one behind, reused by the next write).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		// The rename itself survives a power cut only once the directory is synced.
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// kmsgPosition reads the kernel log's position file: the sequence number
// to start from, 0 (the whole ring buffer) when there is none or it is of
// another boot.
func kmsgPosition(file, bootID string) uint64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	var boot string
	var seq uint64
	if _, err := fmt.Sscan(string(b), &boot, &seq); err != nil || boot != bootID {
		return 0 // another boot: its ring buffer starts over
	}
	return seq + 1
}

// positionWriter writes a reader's position: at once after a line that was
// spooled, at most every positionEvery otherwise.
type positionWriter struct {
	file string
	// before runs before a position is written: the log shipper spools
	// the lines read up to it, so a restarted agent does not skip them.
	before  func()
	last    time.Time
	pending []byte
	warned  bool
}

func (p *positionWriter) set(data []byte, spooled bool, now time.Time, warn func(error)) {
	p.pending = data
	if !spooled && now.Sub(p.last) < positionEvery {
		return
	}
	p.flush(now, warn)
}

func (p *positionWriter) flush(now time.Time, warn func(error)) {
	if p.pending == nil {
		return
	}
	if p.before != nil {
		p.before()
	}
	if err := writeFileAtomic(p.file, p.pending, 0o600); err != nil {
		if !p.warned { // once: a full disk would say it for every line
			warn(err)
			p.warned = true
		}
		return
	}
	p.pending, p.last, p.warned = nil, now, false
}
