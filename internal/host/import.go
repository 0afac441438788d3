package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// A snapshot directory may come from anywhere (a customer's tarball, a
// shared disk), so it is read as hostile input: it is copied once, file by
// file, into a private directory that the checks then read. Every read of
// the snapshot goes through readLimited, which opens only regular files
// beneath the snapshot (os.Root refuses symbolic links that lead out of
// it), refuses files larger than their kind allows before reading them,
// and waits for no read longer than ReadDeadline. What is refused is
// reported by name and reason; everything else is still diagnosed. The
// limits are documented in docs/snapshot.md.

// Size limits per file kind: several times what the largest real captures
// hold (a 20,000-line kernel journal is about 4 MiB, the process table of
// a node with 5,000 processes a few MiB in all).
const (
	limitMeta     = 1 << 20   // hinomi-snapshot.json
	limitHostFile = 16 << 20  // proc/, sys/, etc/ and other host files
	limitCommand  = 64 << 20  // commands/KEY.out
	limitJSON     = 16 << 20  // commands/KEY.json, probes/KEY.json
	limitTotal    = 1 << 30   // all files together
	limitEntries  = 2_000_000 // files, directories and links
	limitDepth    = 64        // directory nesting
)

// ReadDeadline bounds each read of a snapshot file: a snapshot on a dead
// network mount must not hang the diagnosis.
const ReadDeadline = 5 * time.Second

// maxTimeouts is how many reads may miss their deadline before the rest of
// the snapshot is given up on: the filesystem under it is not answering.
const maxTimeouts = 3

// fdLink matches the recorded descriptor links, proc/PID/fd/N: their text
// is data (the original target, such as socket:[123] or /var/log/syslog)
// and is copied as it is, never followed.
var fdLink = regexp.MustCompile(`^proc/[0-9]+/fd/[0-9]+$`)

// fdDir matches a process's descriptor directory. One that holds nothing
// but descriptor links is not copied link by link (a busy host has
// 100,000 of them): the private copy links to it, and it is only ever
// listed and its links read (readlink), never a file opened through them.
var fdDir = regexp.MustCompile(`^proc/[0-9]+/fd$`)

// onlyFDLinks reports whether ents are all descriptor links.
func onlyFDLinks(ents []fs.DirEntry) bool {
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 || strings.Trim(e.Name(), "0123456789") != "" {
			return false
		}
	}
	return true
}

// limitFor is the largest size accepted for a snapshot file.
func limitFor(rel string) int64 {
	switch {
	case rel == metaName:
		return limitMeta
	case strings.HasPrefix(rel, "commands/") && strings.HasSuffix(rel, ".out"):
		return limitCommand
	case strings.HasPrefix(rel, "commands/"), strings.HasPrefix(rel, "probes/"):
		return limitJSON
	}
	return limitHostFile
}

// errTimeout marks a read that missed its deadline.
var errTimeout = errors.New("no answer")

// readLimited reads rel beneath root: a regular file of at most limit
// bytes, within deadline, or an error that says why not in plain words.
func readLimited(ctx context.Context, root *os.Root, rel string, limit int64, deadline time.Duration) ([]byte, error) {
	return within(ctx, deadline, func() ([]byte, error) { return readRegular(root, rel, limit) })
}

// within runs f, but returns when deadline passes or ctx is done. f is
// then left behind: a system call blocked in a dead filesystem cannot be
// interrupted; f ends if it ever returns.
func within[T any](ctx context.Context, deadline time.Duration, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	t := time.NewTimer(deadline)
	defer t.Stop()
	var zero T
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		return zero, fmt.Errorf("%w within %s (the filesystem under it does not answer)", errTimeout, deadline)
	case <-ctx.Done():
		return zero, context.Cause(ctx)
	}
}

func readRegular(root *os.Root, rel string, limit int64) ([]byte, error) {
	// Stat first, so that a device or FIFO is never even opened (opening
	// some devices does something).
	fi, err := root.Stat(rel)
	if err != nil {
		return nil, explainOpen(root, rel, err)
	}
	if err := acceptable(fi, limit); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should the file have been swapped for a FIFO since the
	// stat, opening it does not wait for a writer.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, explainOpen(root, rel, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := acceptable(fi, limit); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("grew past %s while being read", humanSize(limit))
	}
	return b, nil
}

// acceptable says why a file is not read, or nil.
func acceptable(fi fs.FileInfo, limit int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("is %s, not a regular file", kindOf(fi.Mode()))
	}
	if fi.Size() > limit {
		return fmt.Errorf("is %s, more than the %s a snapshot file of this kind may hold", humanSize(fi.Size()), humanSize(limit))
	}
	return nil
}

// explainOpen turns os.Root's refusal of a link out of the snapshot into
// words that name the link's target.
func explainOpen(root *os.Root, rel string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		if target, lerr := root.Readlink(rel); lerr == nil {
			if abs, aerr := filepath.Abs(root.Name()); aerr == nil && filepath.IsAbs(target) && strings.HasPrefix(target, abs+string(filepath.Separator)) {
				return fmt.Errorf("is an absolute symbolic link (to %s); only relative links inside the snapshot are followed", target)
			}
			return fmt.Errorf("is a symbolic link to %s, outside the snapshot", target)
		}
		return errors.New("leads out of the snapshot through a symbolic link")
	}
	return err
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a special file"
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// importer copies a snapshot into a private directory.
type importer struct {
	src      *os.Root
	abs      string // the snapshot's absolute path
	dst      string
	deadline time.Duration
	problems []string
	refused  map[string]error // by path relative to the snapshot
	entries  int
	bytes    int64
	timeouts int
	stopped  error // set when the rest of the snapshot is given up on
}

func (im *importer) refuse(rel string, err error) {
	err = fmt.Errorf("snapshot file %s: %w: not read", rel, err)
	im.refused[rel] = err
	im.problems = append(im.problems, err.Error())
}

// walk copies the directory rel (relative to the snapshot, "." for its
// top) and everything beneath it. It returns an error only when the
// private copy cannot be written; what it cannot read is recorded.
func (im *importer) walk(ctx context.Context, rel string, depth int) error {
	if depth > limitDepth {
		im.refuse(rel, fmt.Errorf("is nested more than %d directories deep", limitDepth))
		return nil
	}
	ents, err := within(ctx, im.deadline, func() ([]fs.DirEntry, error) {
		d, err := im.src.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY, 0)
		if err != nil {
			return nil, explainOpen(im.src, rel, err)
		}
		defer d.Close()
		return d.ReadDir(-1)
	})
	if err != nil {
		return im.failed(ctx, rel, err)
	}
	for _, e := range ents {
		if ctx.Err() != nil {
			im.interrupted(ctx)
		}
		if im.stopped != nil {
			return nil
		}
		name := path.Join(rel, e.Name())
		if im.entries++; im.entries > limitEntries {
			im.stopped = fmt.Errorf("it holds more than %d entries", limitEntries)
			return nil
		}
		target := filepath.Join(im.dst, filepath.FromSlash(name))
		switch t := e.Type(); {
		case t.IsDir() && fdDir.MatchString(name):
			if err := im.fdDir(ctx, name, target); err != nil {
				return err
			}
		case t.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			if err := im.walk(ctx, name, depth+1); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0 && fdLink.MatchString(name):
			link, err := within(ctx, im.deadline, func() (string, error) { return im.src.Readlink(name) })
			if err != nil {
				if err := im.failed(ctx, name, err); err != nil {
					return err
				}
				continue
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			if err := im.copyFile(ctx, name, target); err != nil {
				return err
			}
		}
	}
	return nil
}

// fdDir links the private copy's rel to the snapshot's descriptor
// directory when it holds only descriptor links (listed under the
// deadline), and copies it entry by entry otherwise.
func (im *importer) fdDir(ctx context.Context, rel, target string) error {
	ents, err := within(ctx, im.deadline, func() ([]fs.DirEntry, error) {
		d, err := im.src.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_DIRECTORY, 0)
		if err != nil {
			return nil, explainOpen(im.src, rel, err)
		}
		defer d.Close()
		return d.ReadDir(-1)
	})
	if err != nil {
		return im.failed(ctx, rel, err)
	}
	if !onlyFDLinks(ents) {
		if err := os.Mkdir(target, 0o700); err != nil {
			return err
		}
		return im.walk(ctx, rel, 3)
	}
	if im.entries += len(ents); im.entries > limitEntries {
		im.stopped = fmt.Errorf("it holds more than %d entries", limitEntries)
		return nil
	}
	return os.Symlink(filepath.Join(im.abs, filepath.FromSlash(rel)), target)
}

// interrupted stops the copy when ctx is done: what was copied is still
// diagnosed.
func (im *importer) interrupted(ctx context.Context) {
	if im.stopped == nil {
		im.stopped = fmt.Errorf("interrupted (%v)", context.Cause(ctx))
	}
}

// failed records a failed read of rel; it returns an error only when the
// whole copy must stop.
func (im *importer) failed(ctx context.Context, rel string, err error) error {
	if ctx.Err() != nil {
		im.interrupted(ctx)
		return nil
	}
	im.refuse(rel, err)
	if errors.Is(err, errTimeout) {
		if im.timeouts++; im.timeouts >= maxTimeouts {
			im.stopped = fmt.Errorf("%d reads got no answer within %s", im.timeouts, im.deadline)
		}
	}
	return nil
}

func (im *importer) copyFile(ctx context.Context, rel, target string) error {
	b, err := readLimited(ctx, im.src, rel, limitFor(rel), im.deadline)
	if err != nil {
		return im.failed(ctx, rel, err)
	}
	if im.bytes += int64(len(b)); im.bytes > limitTotal {
		im.stopped = fmt.Errorf("it holds more than %s", humanSize(limitTotal))
		return nil
	}
	return os.WriteFile(target, b, 0o600)
}

// importSnapshot copies dir into a new private directory and returns it
// with what was not copied and why. ctx stops it; what was copied until
// then is kept.
func importSnapshot(ctx context.Context, dir string, deadline time.Duration) (*importer, error) {
	src, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not a hinomi snapshot: %w", dir, err)
	}
	defer src.Close()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dst, err := privateDir()
	if err != nil {
		return nil, fmt.Errorf("copying snapshot %s: %w", dir, err)
	}
	im := &importer{src: src, abs: abs, dst: dst, deadline: deadline, refused: map[string]error{}}
	if err := im.walk(ctx, ".", 0); err != nil {
		os.RemoveAll(dst)
		return nil, fmt.Errorf("copying snapshot %s: %w", dir, err)
	}
	if im.stopped != nil {
		im.problems = append(im.problems, fmt.Sprintf("the rest of snapshot %s: not read, %v", dir, im.stopped))
	}
	return im, nil
}

// privateDir makes the directory a snapshot is copied into: in memory
// (/dev/shm) when it can, since creating thousands of small files on a
// busy disk costs seconds; else in $TMPDIR.
func privateDir() (string, error) {
	if os.Getenv("TMPDIR") == "" {
		if d, err := os.MkdirTemp("/dev/shm", "hinomi-snapshot-"); err == nil {
			return d, nil
		}
	}
	return os.MkdirTemp("", "hinomi-snapshot-")
}
