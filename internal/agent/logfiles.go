package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hinomi/hinomi/internal/logsource"
	"github.com/hinomi/hinomi/internal/signatures"
	"github.com/hinomi/hinomi/internal/wire"
)

// filePoll is how often a followed log file is looked at for new lines,
// rotation and truncation.
const filePoll = time.Second

// watchFiles follows the log files the agent's configuration names
// (globs): every file matching one is tailed from where the agent last
// stopped in it, across rotation and truncation; the globs are matched
// again every interval, so a file created later is followed too. scanned
// is closed once the files there at start are found.
func (a *Agent) watchFiles(ctx context.Context, scanned chan<- struct{}) {
	following := map[string]context.CancelFunc{}
	defer func() {
		for _, stop := range following {
			stop()
		}
	}()
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	first := true
	for {
		for _, g := range a.cfg.LogFiles {
			paths, err := filepath.Glob(g)
			if err != nil {
				a.throttledWarn("pattern "+g, "bad log file pattern", "pattern", g, "err", err)
				continue
			}
			for _, p := range paths {
				if _, ok := following[p]; ok {
					continue
				}
				st, err := os.Stat(p)
				if err != nil || !st.Mode().IsRegular() || compressed(p) {
					continue
				}
				// A file rotated away (syslog → syslog.1) that the glob
				// also matches was read under its old name already.
				if a.readInode(inode(st)) {
					continue
				}
				// A file there when the agent starts is read from its end
				// (its past is not news) unless the agent has a position
				// in it; one that appears later is read from its start.
				from := int64(0)
				if first {
					from = st.Size()
				}
				fctx, stop := context.WithCancel(ctx)
				following[p] = stop
				a.filesFollowed.Add(1)
				go a.followFile(fctx, p, from)
			}
		}
		if first {
			close(scanned)
		}
		first = false
		a.fileScans.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// followFile tails one file, keeping its position (inode and offset) in
// the state directory.
func (a *Agent) followFile(ctx context.Context, path string, from int64) {
	sum := sha256.Sum256([]byte(path))
	pos := &positionWriter{file: filepath.Join(a.cfg.StateDir, "file-"+hex.EncodeToString(sum[:8])), before: a.flushLines}
	warn := func(err error) { a.cfg.Log.Warn("cannot save a log file's position", "file", path, "err", err) }
	defer func() { pos.flush(time.Now(), warn) }()
	source := filepath.Base(path)
	backoff := time.Second
	for ctx.Err() == nil {
		pos.flush(time.Now(), warn)
		offset := filePosition(pos.file, path, from)
		err := logsource.Tail(ctx, path, offset, filePoll, nil, func(l logsource.Line) error {
			spooled := false
			var sig, mode string
			a.matcher.Line(l.Text, source, func(ev signatures.Event) {
				a.logw.add(ev, time.Now())
				a.append(wire.KindLog, wire.Log{
					Signature: ev.Sig.ID, Mode: ev.Sig.Mode, Severity: ev.Sig.Severity, Title: ev.Sig.Title,
					Source: path, Line: ev.Entry.Message, Fields: ev.Fields,
				})
				spooled, sig, mode = true, ev.Sig.ID, ev.Sig.Mode
			})
			if a.ship != nil {
				a.shipLine(wire.Line{Time: time.Now().UTC(), Source: "file:" + path, Unit: source, Priority: -1,
					Text: strings.ToValidUTF8(strings.TrimRight(string(l.Text), "\r\n"), "\uFFFD"), Fields: matchFields(sig, mode)})
			}
			a.noteInode(l.Inode)
			pos.set(fmt.Appendf(nil, "%d %d\n", l.Inode, l.Offset), spooled, time.Now(), warn)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		a.throttledWarn("file "+path, "log file reader stopped; retrying", "file", path, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// filePosition is where to resume in path: the saved offset when the file
// is still the one it was saved for (same inode), its start when another
// file was rotated in meanwhile, and from (where the agent found it) when
// it has no saved position.
func filePosition(posFile, path string, from int64) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	b, err := os.ReadFile(posFile)
	if err != nil {
		return min(from, st.Size())
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return min(from, st.Size())
	}
	ino, err1 := strconv.ParseUint(f[0], 10, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return min(from, st.Size())
	}
	if ino != inode(st) {
		return 0 // rotated while the agent was away: the new file is all news
	}
	return min(off, st.Size())
}

func inode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

// throttledWarn logs a warning that may repeat with every line at most
// once a minute per kind, saying how many it held back.
func (a *Agent) throttledWarn(kind, msg string, args ...any) {
	if ok, held := a.logs.Allow(kind, time.Now()); ok {
		a.cfg.Log.Warn(msg, append(args, "suppressed", held)...)
	}
}

// compressed: rotated logs that logrotate compressed are not followed.
func compressed(path string) bool {
	switch filepath.Ext(path) {
	case ".gz", ".zst", ".xz", ".bz2", ".lz4", ".zip":
		return true
	}
	return false
}

// maxInodes bounds the inodes remembered as read.
const maxInodes = 4096

// noteInode remembers that a follower read from the file with this inode.
func (a *Agent) noteInode(ino uint64) {
	a.inodeMu.Lock()
	defer a.inodeMu.Unlock()
	if a.inodes == nil || len(a.inodes) >= maxInodes {
		a.inodes = map[uint64]bool{}
	}
	a.inodes[ino] = true
}

func (a *Agent) readInode(ino uint64) bool {
	a.inodeMu.Lock()
	defer a.inodeMu.Unlock()
	return a.inodes[ino]
}
