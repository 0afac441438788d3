package checks

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// storageCapture reads a capture of internal/storage/testdata, split at
// its "## " excerpts.
func storageCapture(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "storage", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n\n")
}

// Two readings of DRBD 9: a resync that has not moved between them is
// stalled; one that finished is no finding. The readings are drbd-1's
// bring-up (crowbar-core#1238).
func TestDRBDSecondReading(t *testing.T) {
	blocks := storageCapture(t, "drbd-1.txt") // [0] Connecting, [1] SyncTarget done:0.08, [2] UpToDate
	ok, _ := json.Marshal(map[string]any{"argv": []string{"drbdadm", "status"}, "exit_code": 0})
	for _, c := range []struct {
		name   string
		second string
		want   finding.Severity
	}{
		{"stalled", blocks[1], finding.Catastrophic},
		{"finished", blocks[2], 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := writeSnapshot(t, map[string][]byte{
				"proc/drbd":                      []byte("version: 9.1.16 (api:2/proto:86-121)\n"),
				"commands/drbdadm-status.json":   ok,
				"commands/drbdadm-status.out":    []byte(blocks[1]),
				"commands/drbdadm-status-2.json": ok,
				"commands/drbdadm-status-2.out":  []byte(c.second),
			})
			res, err := checkDRBD(t.Context(), &Env{Src: src, Host: "node1", Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if c.want == 0 {
				if len(res.Findings) != 0 {
					t.Fatalf("a finished resync: %+v", res.Findings)
				}
				return
			}
			if len(res.Findings) != 1 || res.Findings[0].Severity != c.want || !strings.Contains(res.Findings[0].Summary, "stalled") {
				t.Fatalf("got %+v; want one %s stalled resync", res.Findings, c.want)
			}
		})
	}
}

// A host without the DRBD module, md driver, zfs module or smartctl is not
// applicable, and says so without running anything else.
func TestStorageChecksNotApplicable(t *testing.T) {
	src := writeSnapshot(t, map[string][]byte{"proc/stat": []byte("cpu 0 0 0 0\n")})
	env := &Env{Src: src, Host: "plain", Now: time.Now()}
	for name, c := range map[string]func() (Result, error){
		"drbd":    func() (Result, error) { return checkDRBD(t.Context(), env) },
		"zfs":     func() (Result, error) { return checkZFS(t.Context(), env) },
		"md-raid": func() (Result, error) { return checkMDRAID(t.Context(), env) },
		"smart":   func() (Result, error) { return checkSMART(t.Context(), env) },
	} {
		if res, err := c(); err != ErrNotApplicable || len(res.Findings) != 0 {
			t.Errorf("%s: %v, %d findings; want ErrNotApplicable", name, err, len(res.Findings))
		}
	}
}

// The agent's SMART cache answers from memory within its TTL and asks
// again after it; each answer here is a fresh random UUID from the kernel.
func TestSmartCache(t *testing.T) {
	c := NewSmartCache(time.Minute)
	t0 := time.Now()
	ask := func(at time.Time) string {
		env := &Env{Src: host.Live(), Now: at}
		res, err := c.command(t.Context(), env, "uuid", "cat", "/proc/sys/kernel/random/uuid")
		if err != nil {
			t.Fatal(err)
		}
		return string(res.Stdout)
	}
	first := ask(t0)
	if again := ask(t0.Add(30 * time.Second)); again != first {
		t.Errorf("within the TTL: %q, then %q; want the cached answer", first, again)
	}
	if later := ask(t0.Add(2 * time.Minute)); later == first {
		t.Errorf("after the TTL: still %q; want a new answer", later)
	}
	var nilCache *SmartCache
	env := &Env{Src: host.Live(), Now: t0}
	a, _ := nilCache.command(t.Context(), env, "uuid", "cat", "/proc/sys/kernel/random/uuid")
	b, _ := nilCache.command(t.Context(), env, "uuid", "cat", "/proc/sys/kernel/random/uuid")
	if string(a.Stdout) == string(b.Stdout) {
		t.Error("without a cache (doctor) every call runs the command")
	}
}

// DRBD 9 is read from drbdsetup status --json; drbd-utils that refuse
// --json (LINBIT/drbd#129: "status: unrecognized option '--json'", a
// non-zero exit) fall back to drbdadm status.
func TestDRBDJSONAndFallback(t *testing.T) {
	withoutSource := func(name string) []byte {
		b := strings.Join(storageCapture(t, name), "\n\n")
		_, rest, _ := strings.Cut(b, "\n")
		return []byte(rest)
	}
	ok, _ := json.Marshal(map[string]any{"argv": []string{"drbdsetup", "status", "--json"}, "exit_code": 0})
	refused, _ := json.Marshal(map[string]any{"argv": []string{"drbdsetup", "status", "--json"}, "exit_code": 20})
	adm, _ := json.Marshal(map[string]any{"argv": []string{"drbdadm", "status"}, "exit_code": 0})
	version := []byte("version: 9.1.16 (api:2/proto:86-121)\n")

	src := writeSnapshot(t, map[string][]byte{
		"proc/drbd":                           version,
		"commands/drbdsetup-status-json.json": ok,
		"commands/drbdsetup-status-json.out":  withoutSource("drbd-json-ha-exporter-25.txt"),
	})
	res, err := checkDRBD(t.Context(), &Env{Src: src, Host: "node1", Now: time.Now()})
	if err != nil || len(res.Findings) != 0 || len(res.Headroom) != 1 || res.Headroom[0].Source != "drbdsetup status --json" || res.Headroom[0].Limit != 2 {
		t.Fatalf("JSON: %+v, %v", res, err)
	}

	seed := strings.Split(strings.Join(storageCapture(t, "drbd-2.txt"), "\n\n"), "\n## ")[1]
	src = writeSnapshot(t, map[string][]byte{
		"proc/drbd":                           version,
		"commands/drbdsetup-status-json.json": refused,
		"commands/drbdsetup-status-json.out":  nil,
		"commands/drbdadm-status.json":        adm,
		"commands/drbdadm-status.out":         []byte(seed),
	})
	res, err = checkDRBD(t.Context(), &Env{Src: src, Host: "hive0", Now: time.Now()})
	if err != nil || len(res.Findings) != 1 || res.Findings[0].Evidence.Vars["case"] != "outdated" || res.Headroom[0].Source != "drbdadm status" {
		t.Fatalf("fallback: %+v, %v", res, err)
	}
}
