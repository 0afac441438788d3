package doctor

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/runbook"
)

var update = flag.Bool("update", false, "rewrite the golden files of the snapshot replay test")

// TestReplaySnapshots diagnoses every snapshot captured from a real machine
// under testdata/snapshots and compares the text view with its golden file
// (NAME.txt beside the snapshot directory). Rewrite them with -update.
func TestReplaySnapshots(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "snapshots", "*"))
	if err != nil {
		t.Fatal(err)
	}
	book := builtinBook(t)
	n := 0
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			d, err := Diagnose(t.Context(), Options{From: dir})
			if err != nil {
				t.Fatal(err)
			}
			d.Took = 0
			var got bytes.Buffer
			if err := WriteText(&got, d, TextOptions{Min: finding.Info, Location: time.UTC}, book); err != nil {
				t.Fatal(err)
			}
			golden := dir + ".txt"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("doctor --from %s differs from %s:\n%s", dir, golden, got.String())
			}
		})
	}
	if n == 0 {
		t.Fatal("no snapshots under testdata/snapshots")
	}
}

// In the JSON, recover_ready holds only steps with every value known, and
// they are also in recover.
func TestJSONRecoverReady(t *testing.T) {
	book := builtinBook(t)
	d, err := Diagnose(t.Context(), Options{From: filepath.Join("testdata", "snapshots", "vm-fd-limit")})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, d, finding.Info, book); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Findings []struct {
			Key          string   `json:"key"`
			Recover      []string `json:"recover"`
			RecoverReady []string `json:"recover_ready"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, f := range r.Findings {
		for _, c := range f.RecoverReady {
			ready++
			if rePlaceholder.MatchString(c) || !slices.Contains(f.Recover, c) {
				t.Errorf("%s: ready step %q has a placeholder or is not in recover", f.Key, c)
			}
		}
	}
	if ready == 0 {
		t.Error("no ready step in any finding of the snapshot")
	}
}

// The all-clear is partial only when the present went partly unseen.
func TestAllClearWording(t *testing.T) {
	book := builtinBook(t)
	for _, c := range []struct {
		blind []string
		want  string
	}{
		{[]string{"how the previous boot ended (no persistent journal and no pstore records)"}, "All clear: nothing at or above low."},
		{[]string{"open files and inotify use of 8 processes of other users (run as root to see them)"}, "All clear in what doctor could see"},
	} {
		d := &Diagnosis{}
		d.Blind = c.blind
		var buf bytes.Buffer
		if err := WriteText(&buf, d, TextOptions{Min: finding.Low, Location: time.UTC}, book); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), c.want) {
			t.Errorf("blind %q: want %q in\n%s", c.blind, c.want, buf.String())
		}
	}
}

// rePlaceholder is a value left for the operator to fill in: <pid>, <n>.
var rePlaceholder = regexp.MustCompile(`<[A-Za-z][A-Za-z0-9_ .:/-]*>`)

// builtinBook is the built-in runbooks.
func builtinBook(t *testing.T) *runbook.Book {
	t.Helper()
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return book
}
