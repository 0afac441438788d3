// Package logsource reads logs as they are written, for the agent: the
// kernel ring buffer (/dev/kmsg, by sequence number), the systemd journal
// (journalctl --follow, by cursor) and plain files (tailed across rotation
// and truncation, by offset). Each reader reports a position with every
// line so that a restarted agent resumes where it stopped.
package logsource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Line is one log line with its position in its source.
type Line struct {
	Text []byte
	// Seq is the kmsg sequence number.
	Seq uint64
	// Cursor is the journal cursor.
	Cursor string
	// Offset is the file offset just after the line; Inode identifies the
	// file it was read from.
	Offset int64
	Inode  uint64
	// Lost counts records the source dropped before this line (kmsg ring
	// buffer overrun, a file truncated under the reader).
	Lost uint64
}

// maxLine bounds one line; longer ones are cut (and the rest dropped) so
// that memory stays bounded whatever is written.
const maxLine = 256 << 10

// Kmsg follows the kernel log from /dev/kmsg. Records before fromSeq are
// skipped (0: everything the ring buffer still holds). It returns when ctx
// is done.
func Kmsg(ctx context.Context, path string, fromSeq uint64, emit func(Line) error) error {
	if path == "" {
		path = "/dev/kmsg"
	}
	// Non-blocking, so that the runtime poller waits for records and
	// Close (on ctx.Done) wakes a pending Read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	defer f.Close()
	buf := make([]byte, 16<<10)
	var last uint64
	var lost uint64
	for {
		n, err := f.Read(buf)
		switch {
		case errors.Is(err, syscall.EPIPE):
			// The ring buffer overwrote records we had not read yet; the
			// next read returns the oldest one still there.
			lost++
			continue
		case errors.Is(err, syscall.EINVAL):
			continue // a record larger than buf: skipped by the kernel
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		rec := buf[:n]
		seq, ok := kmsgSeq(rec)
		if !ok {
			continue
		}
		if seq < fromSeq {
			continue
		}
		if last != 0 && seq > last+1 {
			lost += seq - last - 1
		}
		last = seq
		line := Line{Text: append([]byte(nil), bytes.TrimRight(rec, "\n")...), Seq: seq, Lost: lost}
		lost = 0
		if err := emit(line); err != nil {
			return err
		}
	}
}

// kmsgSeq reads the sequence number of a /dev/kmsg record.
func kmsgSeq(rec []byte) (uint64, bool) {
	_, rest, ok := bytes.Cut(rec, []byte(","))
	if !ok {
		return 0, false
	}
	seq, _, ok := bytes.Cut(rest, []byte(","))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(seq), 10, 64)
	return n, err == nil
}

// Journal follows the systemd journal with journalctl in JSON, after
// cursor (empty: from now). tool is the journalctl binary ("" for the one
// on PATH).
func Journal(ctx context.Context, tool, cursor string, emit func(Line) error) error {
	if tool == "" {
		tool = "journalctl"
	}
	args := []string{"--follow", "--no-pager", "-q", "-o", "json"}
	if cursor != "" {
		args = append(args, "--after-cursor="+cursor)
	} else {
		args = append(args, "--lines=0")
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var emitErr error
	for sc.Scan() {
		text := append([]byte(nil), sc.Bytes()...)
		var c struct {
			Cursor string `json:"__CURSOR"`
		}
		_ = json.Unmarshal(text, &c)
		if emitErr = emit(Line{Text: text, Cursor: c.Cursor}); emitErr != nil {
			break
		}
	}
	scanErr := sc.Err()
	if emitErr != nil || scanErr != nil {
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	switch {
	case emitErr != nil:
		return emitErr
	case ctx.Err() != nil:
		return ctx.Err()
	case scanErr != nil:
		return fmt.Errorf("journal: %w", scanErr)
	case waitErr != nil:
		return fmt.Errorf("journal: %s: %w: %s", tool, waitErr, strings.TrimSpace(stderr.String()))
	}
	return errors.New("journal: journalctl ended")
}

// Tail follows a file by name from offset: it reads what is there, then
// waits for more. When the name is rotated (renamed away and created anew)
// it reads the old file to its end and continues with the new one from its
// start; when the file is truncated it starts again at 0. poll is how often
// it looks for growth and rotation; ticks, when not nil, replaces the timer
// (tests drive it).
func Tail(ctx context.Context, path string, offset int64, poll time.Duration, ticks <-chan time.Time, emit func(Line) error) error {
	if ticks == nil {
		t := time.NewTicker(poll)
		defer t.Stop()
		ticks = t.C
	}
	var f *os.File
	var ino uint64
	var r *bufio.Reader
	var partial []byte
	open := func(at int64) error {
		nf, err := os.Open(path)
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(int(nf.Fd()), &st); err != nil {
			nf.Close()
			return err
		}
		if at > st.Size {
			at = 0 // truncated while we were away
		}
		if _, err := nf.Seek(at, io.SeekStart); err != nil {
			nf.Close()
			return err
		}
		if f != nil {
			f.Close()
		}
		f, ino, offset, partial = nf, st.Ino, at, nil
		r = bufio.NewReaderSize(f, 64<<10)
		return nil
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	// readAll emits every complete line; a last line without its newline
	// waits for the rest.
	readAll := func() error {
		for {
			chunk, err := r.ReadSlice('\n')
			if len(chunk) > 0 {
				offset += int64(len(chunk))
				if len(partial)+len(chunk) <= maxLine {
					partial = append(partial, chunk...)
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err == nil {
				line := Line{Text: bytes.TrimRight(partial, "\r\n"), Offset: offset, Inode: ino}
				partial = nil
				if err := emit(line); err != nil {
					return err
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	for {
		if f == nil {
			if err := open(offset); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if f != nil {
			if err := readAll(); err != nil {
				return err
			}
			// Rotated or truncated?
			var cur syscall.Stat_t
			switch err := syscall.Stat(path, &cur); {
			case err == nil && cur.Ino != ino:
				if err := readAll(); err != nil { // the old file's last words
					return err
				}
				if err := open(0); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				continue
			case err == nil && cur.Size < offset:
				if err := open(0); err != nil {
					return err
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		}
	}
}
