// Package logstore keeps the log lines of every host in one place and searches
// them. The tower writes what agents ship and what syslog senders send; the
// CLI, the console and incident exports search it. Two backends sit behind the
// one Store interface: an embedded store in the tower's data directory (the
// default) and VictoriaLogs, for fleets that outgrow it.
package logstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Entry is one stored log line.
type Entry struct {
	Time     time.Time         // when the line was written (the host's clock)
	Host     string            // the agent's name, or the syslog sender's hostname
	Source   string            // "journal", "kmsg", "file:/var/log/syslog", "container:NAME", "syslog"
	Unit     string            // systemd unit, container name, syslog app-name; may be empty
	Priority int               // syslog severity 0 (emerg) .. 7 (debug); -1 when unknown
	Line     string            // the message, at most MaxLine bytes (cut, with a marker, by whoever makes the Entry)
	Fields   map[string]string // optional: signature, mode, pid, facility...
}

// MaxLine is the documented cut size for a line. CutLine cuts to it; the
// stores cut a longer line too rather than refuse it.
const MaxLine = 64 << 10

// cutMarker ends a line that CutLine shortened.
const cutMarker = " …[cut]"

// CutLine returns s cut to at most MaxLine bytes, on a rune boundary, ending
// with a marker that says so; s itself when it fits.
func CutLine(s string) string {
	if len(s) <= MaxLine {
		return s
	}
	n := MaxLine - len(cutMarker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + cutMarker
}

// Query is a parsed search.
type Query struct {
	Terms        []Term    // all must match (AND); see ParseQuery
	Hosts, Units []string  // any of (empty: all)
	MaxPriority  int       // only lines with Priority <= this (7 or -1: all)
	Since, Until time.Time // half-open [Since, Until); zero: unbounded
	Limit        int       // at most this many entries (0: a default of 1000)
	Newest       bool      // newest first (default oldest first)
}

// DefaultLimit is the number of entries a Query with no Limit returns.
const DefaultLimit = 1000

// Term is one condition of a Query.
type Term struct {
	Text   string // a word or a "quoted phrase"; matched case-insensitively
	Phrase bool
	Not    bool   // -word: must not match
	Field  string // "" for the line; or host, unit, source, priority
}

// Store keeps log lines. Append is durable when it returns.
type Store interface {
	Append(ctx context.Context, entries []Entry) error
	// Search calls fn for each matching entry in time order (Newest: reverse) until fn returns false or Limit.
	Search(ctx context.Context, q Query, fn func(Entry) bool) error
	Stats(ctx context.Context) (Stats, error) // lines, bytes on disk, oldest, newest, dropped by retention
	Close() error
}

// Stats describes what a Store holds.
type Stats struct {
	Lines, DiskBytes, RetentionDropped int64
	Oldest, Newest                     time.Time
	// InvalidUTF8 counts the lines (since the store was opened) whose invalid
	// UTF-8 was replaced by U+FFFD; CutLines those longer than MaxLine.
	InvalidUTF8, CutLines int64
}

// Options are the settings of Open. The zero value is usable.
type Options struct {
	// Retention of the embedded store: lines older than MaxAge and the oldest
	// lines beyond MaxBytes on disk are dropped (zero: no limit).
	MaxAge   time.Duration
	MaxBytes int64
	Logger   *slog.Logger // nil: discard
	// HTTPClient talks to VictoriaLogs (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
	// Now is the clock for age retention (nil: time.Now).
	Now func() time.Time
}

// Open opens the store a tower's config names: "" or "embedded" (a directory,
// "logs", under the tower's data dir), or "victorialogs:http://127.0.0.1:9428".
func Open(ctx context.Context, backend, dataDir string, opts Options) (Store, error) {
	switch {
	case backend == "" || backend == "embedded":
		return OpenEmbedded(filepath.Join(dataDir, "logs"), opts)
	case strings.HasPrefix(backend, "victorialogs:"):
		return OpenVictoriaLogs(ctx, strings.TrimPrefix(backend, "victorialogs:"), opts)
	default:
		return nil, fmt.Errorf("logstore: unknown backend %q (want \"embedded\" or \"victorialogs:URL\")", backend)
	}
}
