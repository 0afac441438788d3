package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seeds adds every capture whose name starts with one of prefixes.
func seeds(f *testing.F, prefixes ...string) {
	files, _ := filepath.Glob("testdata/*")
	for _, p := range files {
		for _, pre := range prefixes {
			if strings.HasPrefix(filepath.Base(p), pre) {
				b, err := os.ReadFile(p)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
}

// fuzz budget: 2000x
func FuzzDRBDStatus(f *testing.F) {
	seeds(f, "drbd")
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _ := ParseDRBDStatus(b)
		DiagnoseDRBD(LatestViews(rs), rs, "drbdadm status")
	})
}

// fuzz budget: 2000x
func FuzzDRBDJSON(f *testing.F) {
	seeds(f, "drbd-6", "drbd-json")
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _, err := ParseDRBDJSON(b)
		if err != nil && len(rs) > 0 {
			t.Fatalf("error %v with %d resources", err, len(rs))
		}
		DiagnoseDRBD(rs, nil, "drbdsetup status --json")
	})
}

// fuzz budget: 2000x
func FuzzProcDRBD(f *testing.F) {
	seeds(f, "proc-drbd")
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _ := ParseProcDRBD(b)
		DiagnoseDRBD(rs, rs, "/proc/drbd")
	})
}

// fuzz budget: 2000x
func FuzzZpoolStatus(f *testing.F) {
	seeds(f, "zpool-status")
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		pools, _ := ParseZpoolStatus(b)
		DiagnoseZFS(pools, nil, now, "zpool status")
	})
}

// fuzz budget: 2000x
func FuzzZpoolList(f *testing.F) {
	seeds(f, "zpool-list")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range ParseZpoolList(b) {
			if u.Name == "" || u.Size <= 0 {
				t.Fatalf("kept a pool without name or size: %+v", u)
			}
		}
	})
}

// fuzz budget: 2000x
func FuzzMdstat(f *testing.F) {
	seeds(f, "mdstat")
	f.Fuzz(func(t *testing.T, b []byte) {
		arrays, _ := ParseMdstat(b)
		DiagnoseMD(arrays, "/proc/mdstat")
	})
}

// fuzz budget: 2000x
func FuzzSmartJSON(f *testing.F) {
	seeds(f, "smartctl-json", "smartctl-scan", "smartctl-smartctl")
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseSmartJSON(b); err == nil {
			DiagnoseSmart(d, "smartctl")
		}
		_, _ = ParseSmartScan(b)
	})
}

// fuzz budget: 2000x
func FuzzSmartText(f *testing.F) {
	seeds(f, "smartctl-a", "smartctl-attr")
	f.Fuzz(func(t *testing.T, b []byte) {
		DiagnoseSmart(ParseSmartText(b, ""), "smartctl")
	})
}

// fuzz budget: 2000x
func FuzzRepairJSON(f *testing.F) {
	seeds(f, "drbd-6", "drbd-json", "smartctl-json")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1 {
			_, _ = repairJSON(b[:len(b)/2])
		}
		_, _ = repairJSON(b)
	})
}

// fuzz budget: 2000x
func FuzzDRBDEvents2(f *testing.F) {
	seeds(f, "drbd-7", "drbd-1")
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _ := ParseDRBDEvents2(b)
		DiagnoseDRBD(rs, rs, "drbdsetup events2")
	})
}
