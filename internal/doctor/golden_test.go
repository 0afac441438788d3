package doctor

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
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
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
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
