package logscan

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/signatures"
)

var update = flag.Bool("update", false, "rewrite the golden timelines")

func catalogue(t *testing.T) *signatures.Catalogue {
	t.Helper()
	c, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, o Options) *Report {
	t.Helper()
	if o.Catalogue == nil {
		o.Catalogue = catalogue(t)
	}
	o.Context = logline.Context{Year: 2024, Location: time.UTC}
	r, err := Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	r.Took = 0
	return r
}

// TestTimelines scans real logs (the project's samples and a corosync
// excerpt of a Proxmox cluster losing quorum) and compares the timeline with its golden file
// (testdata/NAME.timeline). Rewrite them with -update and read the diff.
func TestTimelines(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := run(t, Options{Inputs: []string{f}})
			if len(r.Incidents) == 0 {
				t.Errorf("no incident found in %s", f)
			}
			var got bytes.Buffer
			if err := WriteText(&got, r, time.UTC); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".txt") + ".timeline"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("timeline of %s changed:\n%s", f, got.String())
			}
		})
	}
}

// TestCompressedAndStdin: gzip, zstd and standard input give the same
// incidents as the plain file.
func TestCompressedAndStdin(t *testing.T) {
	src := "testdata/pve-corosync-quorum-loss.txt"
	plain, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	zst, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	enc := zst.EncodeAll(plain, nil)
	if err := os.WriteFile(filepath.Join(dir, "log.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.zst"), enc, 0o644); err != nil {
		t.Fatal(err)
	}
	summary := func(r *Report) string {
		var b strings.Builder
		for _, in := range r.Incidents {
			b.WriteString(in.Sig.ID + " " + in.Subject() + " " + string(rune('0'+in.Count%10)) + "\n")
		}
		return b.String()
	}
	want := summary(run(t, Options{Inputs: []string{src}}))
	for _, o := range []Options{
		{Inputs: []string{filepath.Join(dir, "log.gz")}},
		{Inputs: []string{filepath.Join(dir, "log.zst")}},
		{Inputs: []string{"-"}, Stdin: bytes.NewReader(plain)},
		{Inputs: []string{"-"}, Stdin: bytes.NewReader(gz.Bytes())},
	} {
		r := run(t, o)
		if got := summary(r); got != want {
			t.Errorf("%v: incidents\n%s\nwant\n%s", o.Inputs, got, want)
		}
		if r.Stats.Bytes != int64(len(plain)) {
			t.Errorf("%v: %d bytes scanned, want %d", o.Inputs, r.Stats.Bytes, len(plain))
		}
	}
}

func TestJSONReport(t *testing.T) {
	r := run(t, Options{Inputs: []string{"testdata/kernel-7.txt"}})
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema    string `json:"schema"`
		Incidents []struct {
			Signature string `json:"signature"`
			Mode      string `json:"mode"`
			Count     int    `json:"count"`
			Runbook   string `json:"runbook"`
			First     struct {
				Input string `json:"input"`
				Line  int    `json:"line"`
			} `json:"first"`
		} `json:"incidents"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Schema != JSONSchema || len(doc.Incidents) == 0 {
		t.Fatalf("report %+v", doc)
	}
	for _, in := range doc.Incidents {
		if in.Signature == "" || in.Mode == "" || in.Runbook == "" || in.Count < 1 || in.First.Line < 1 {
			t.Errorf("incident %+v", in)
		}
	}
}

func TestSinceUntil(t *testing.T) {
	all := run(t, Options{Inputs: []string{"testdata/kernel-7.txt"}})
	none := run(t, Options{Inputs: []string{"testdata/kernel-7.txt"}, Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	withTime := 0
	for _, in := range all.Incidents {
		if !in.First.Entry.Time.IsZero() {
			withTime++
		}
	}
	if withTime == 0 {
		t.Fatal("sample has no dated incident")
	}
	if len(none.Incidents) != len(all.Incidents)-withTime {
		t.Errorf("--since 2030 kept %d of %d incidents (%d dated)", len(none.Incidents), len(all.Incidents), withTime)
	}
}

func TestMissingInput(t *testing.T) {
	_, err := Run(t.Context(), Options{Inputs: []string{filepath.Join(t.TempDir(), "nope.log")}, Catalogue: catalogue(t)})
	if err == nil || !strings.Contains(err.Error(), "nope.log") {
		t.Errorf("err %v, want one naming the file", err)
	}
}

// A journal that yields nothing (no journald, a volatile journal without
// the previous boot) is an error, not an all-clear.
func TestEmptyJournalIsNotAllClear(t *testing.T) {
	cat, err := signatures.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Journal: []string{"-b", "-1"}, JournalTool: "true", Catalogue: cat})
	if err == nil || !strings.Contains(err.Error(), "gave no lines") {
		t.Errorf("empty journal: %v, want an error saying nothing was scanned", err)
	}
	// echo prints its arguments: one line, scanned, no error.
	rep, err := Run(context.Background(), Options{Journal: []string{"-b"}, JournalTool: "echo", Catalogue: cat})
	if err != nil || rep.Stats.Lines != 1 {
		t.Errorf("a journal with one line: %+v, %v", rep, err)
	}
}
