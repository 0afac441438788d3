// Package host is the one seam through which hinomi reads a host: files under
// a root (/proc, /sys, /etc, /var/log …), the output of commands, and the
// results of live probes such as statfs. On a live host the root is "/"; a
// snapshot directory made by `hinomi snapshot` has the same layout, so every
// check runs unchanged against a capture of another machine.
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// ErrNotCaptured says a snapshot holds no copy of what was asked for: the
// input did not exist on the captured host, or an older hinomi made the
// snapshot. Checks treat it like a missing file.
var ErrNotCaptured = errors.New("not captured in this snapshot")

// Source reads one host, live or captured.
type Source struct {
	root string
	live bool
	rec  *Recorder
	// A snapshot's description and the files of it that were not read.
	meta     Meta
	problems []string
	refused  map[string]error
	// CommandTimeout bounds every command run on a live host.
	CommandTimeout time.Duration
}

// Live reads the machine hinomi runs on.
func Live() *Source { return &Source{root: "/", live: true, CommandTimeout: 5 * time.Second} }

// FromDir reads a snapshot made by `hinomi snapshot`. It copies the
// snapshot into a private directory first, reading it as hostile input
// (see import.go); Problems lists the files it refused. ctx stops the copy;
// Close removes it.
func FromDir(ctx context.Context, dir string) (*Source, error) {
	m, err := readMeta(ctx, dir)
	if err != nil {
		return nil, err
	}
	if m.Format != MetaFormat {
		return nil, fmt.Errorf("%s: snapshot format %d, this hinomi reads %d", dir, m.Format, MetaFormat)
	}
	im, err := importSnapshot(ctx, dir, ReadDeadline)
	if err != nil {
		return nil, err
	}
	return &Source{root: im.dst, meta: m, problems: im.problems, refused: im.refused}, nil
}

// Close removes a snapshot's private copy; it does nothing on a live host.
func (s *Source) Close() error {
	if s.live {
		return nil
	}
	return os.RemoveAll(s.root)
}

// Meta is a snapshot's description (zero on a live host).
func (s *Source) Meta() Meta { return s.meta }

// Problems lists, in plain words, the snapshot files that were not read
// and why (a FIFO, a link out of the snapshot, a file too large).
func (s *Source) Problems() []string { return s.problems }

// Live reports whether the source is the running machine.
func (s *Source) Live() bool { return s.live }

// Root is "/" on a live host, the private copy of a snapshot otherwise.
func (s *Source) Root() string { return s.root }

// Record makes every later read also copy what it read into rec.
func (s *Source) Record(rec *Recorder) { s.rec = rec }

// Recorder returns the recorder attached by Record, or nil.
func (s *Source) Recorder() *Recorder { return s.rec }

// Path maps a host path such as /proc/sys/fs/file-nr into the source.
func (s *Source) Path(p string) string {
	if s.live {
		return p
	}
	return filepath.Join(s.root, filepath.FromSlash(strings.TrimPrefix(p, "/")))
}

// ReadFile reads a host file. From a snapshot, a file that was refused
// (see Problems) returns why.
func (s *Source) ReadFile(p string) ([]byte, error) {
	if !s.live {
		return s.readCopy(strings.TrimPrefix(path.Clean("/"+p), "/"))
	}
	b, err := os.ReadFile(p)
	if err == nil && s.rec != nil {
		s.rec.File(p, b)
	}
	return b, err
}

// readCopy reads rel from a snapshot's private copy.
func (s *Source) readCopy(rel string) ([]byte, error) {
	if err, ok := s.refused[rel]; ok {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the private copy's path means nothing to a reader
		}
		if errors.Is(err, syscall.EISDIR) {
			err = errors.New("is a directory, not a regular file")
		}
		return nil, notCaptured(fmt.Errorf("snapshot file %s: %w", rel, err))
	}
	return b, nil
}

// ReadDirNames lists a host directory.
func (s *Source) ReadDirNames(p string) ([]string, error) {
	f, err := os.Open(s.Path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// ProcFS returns a procfs view of the source's /proc.
func (s *Source) ProcFS() (procfs.FS, error) { return procfs.NewFS(s.Path("/proc")) }

// CommandResult is a command's captured output.
type CommandResult struct {
	Stdout   []byte
	ExitCode int
}

type commandMeta struct {
	Argv     []string `json:"argv"`
	ExitCode int      `json:"exit_code"`
	Error    string   `json:"error,omitempty"`
}

// Command runs argv on a live host (with CommandTimeout) or returns the output
// captured under commands/KEY in a snapshot. A command that is not installed
// returns an error wrapping exec.ErrNotFound; a non-zero exit is not an error:
// callers read ExitCode, since systemctl and friends use it to say things.
func (s *Source) Command(ctx context.Context, key string, argv ...string) (CommandResult, error) {
	if !s.live {
		var m commandMeta
		if err := s.readJSON("commands/"+key+".json", &m); err != nil {
			return CommandResult{}, err
		}
		if m.Error != "" {
			if strings.HasPrefix(m.Error, argv[0]+": ") {
				return CommandResult{}, errors.New(m.Error) // recorded with its name already
			}
			return CommandResult{}, fmt.Errorf("%s: %s", argv[0], m.Error)
		}
		out, err := s.readCopy("commands/" + key + ".out")
		if err != nil {
			return CommandResult{}, err
		}
		return CommandResult{Stdout: out, ExitCode: m.ExitCode}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=")
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	res := CommandResult{Stdout: out}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.ExitCode = ee.ExitCode()
		err = nil
	case ctx.Err() != nil:
		err = fmt.Errorf("%s: no answer within %s", argv[0], s.CommandTimeout)
	}
	if s.rec != nil {
		m := commandMeta{Argv: argv, ExitCode: res.ExitCode}
		if err != nil {
			m.Error = err.Error()
		}
		s.rec.JSON("commands/"+key+".json", m)
		if err == nil {
			s.rec.Raw("commands/"+key+".out", out)
		}
	}
	return res, err
}

// Probe returns the result of a live measurement that has no file behind it
// (statfs, a stat with a deadline, a directory size, an API call). On a live
// host it calls measure and stores its result in v; in a snapshot it loads
// the result recorded under probes/KEY.json.
func (s *Source) Probe(key string, v any, measure func() error) error {
	if !s.live {
		return s.readJSON("probes/"+key+".json", v)
	}
	if err := measure(); err != nil {
		return err
	}
	if s.rec != nil {
		s.rec.JSON("probes/"+key+".json", v)
	}
	return nil
}

func (s *Source) readJSON(rel string, v any) error {
	b, err := s.readCopy(rel)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("snapshot %s: %w", rel, err)
	}
	return nil
}

func notCaptured(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotCaptured, err)
	}
	return err
}

// Missing reports whether err means "this input does not exist here", as
// opposed to a failure to read something that does.
func Missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotCaptured) || errors.Is(err, exec.ErrNotFound)
}
