package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MetaFormat is the version of the snapshot layout; see docs/snapshot.md.
const MetaFormat = 1

// Meta describes a snapshot; it is stored as DIR/hinomi-snapshot.json.
type Meta struct {
	Format   int       `json:"format"`
	Host     string    `json:"host"`
	Taken    time.Time `json:"taken"`
	Version  string    `json:"hinomi_version"`
	UID      int       `json:"uid"` // who took it: a non-root capture sees less
	Warnings []string  `json:"warnings,omitempty"`
}

const metaName = "hinomi-snapshot.json"

// ReadMeta loads a snapshot's description. Like every file of a
// snapshot, it must be a regular file of a bounded size.
func ReadMeta(dir string) (Meta, error) { return readMeta(context.Background(), dir) }

func readMeta(ctx context.Context, dir string) (Meta, error) {
	var m Meta
	root, err := os.OpenRoot(dir)
	if err != nil {
		return m, fmt.Errorf("%s is not a hinomi snapshot: %w", dir, err)
	}
	defer root.Close()
	b, err := readLimited(ctx, root, metaName, limitMeta, ReadDeadline)
	if err != nil {
		return m, fmt.Errorf("%s is not a hinomi snapshot: %s: %w", dir, metaName, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, metaName), err)
	}
	return m, nil
}

// Recorder writes what a live Source reads into a snapshot directory. It is
// safe for concurrent use; the first error is kept and reported by Close.
type Recorder struct {
	dir  string
	mu   sync.Mutex
	err  error
	seen map[string]bool
}

// NewRecorder creates dir (which must not exist or be empty).
func NewRecorder(dir string) (*Recorder, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("snapshot directory %s is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Recorder{dir: dir, seen: map[string]bool{}}, nil
}

// Dir is the snapshot directory.
func (r *Recorder) Dir() string { return r.dir }

func (r *Recorder) target(rel string) (string, bool) {
	rel = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[rel] {
		return "", false
	}
	r.seen[rel] = true
	return filepath.Join(r.dir, rel), true
}

func (r *Recorder) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

// File records the content of a host file at its host path.
func (r *Recorder) File(hostPath string, b []byte) { r.Raw(hostPath, b) }

// Raw records bytes at a path relative to the snapshot.
func (r *Recorder) Raw(rel string, b []byte) {
	p, ok := r.target(rel)
	if !ok {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		r.fail(err)
		return
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		r.fail(err)
	}
}

// Symlink records a symbolic link (a /proc/PID/fd entry) with its target.
func (r *Recorder) Symlink(hostPath, target string) {
	p, ok := r.target(hostPath)
	if !ok {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		r.fail(err)
		return
	}
	if err := os.Symlink(target, p); err != nil && !errors.Is(err, os.ErrExist) {
		r.fail(err)
	}
}

// JSON records v as indented JSON at a path relative to the snapshot.
func (r *Recorder) JSON(rel string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		r.fail(err)
		return
	}
	r.Raw(rel, append(b, '\n'))
}

// Close writes the snapshot's description and reports the first error.
func (r *Recorder) Close(m Meta) error {
	m.Format = MetaFormat
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, metaName), append(b, '\n'), 0o600); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
