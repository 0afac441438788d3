package pve

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/logline"
)

// seedAll seeds a fuzzer with every capture under testdata.
func seedAll(f *testing.F) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

var fuzzNow = time.Date(2026, 12, 2, 1, 30, 0, 0, time.UTC)

// fuzzMatcher is built once: the catalogue takes longer to load than a
// fuzz input to scan.
var fuzzMatcher, _ = LogMatcher(nil, logline.Context{Now: fuzzNow, Location: time.UTC})

// fuzz budget: 20000x
func FuzzParseQuorum(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuorum(s)
		if err != nil {
			return
		}
		if q.Blocked && q.Quorate {
			t.Fatalf("blocked yet quorate: %+v", q)
		}
		conf, _ := ParseCorosyncConf(s)
		DiagnoseQuorum(q, Scope{Conf: conf, Now: fuzzNow}, time.Time{})
	})
}

// fuzz budget: 20000x
func FuzzParseCorosyncConf(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseCorosyncConf(s)
	})
}

// fuzz budget: 20000x
func FuzzParseHAStatus(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseHAStatus(s)
		if err != nil {
			return
		}
		DiagnoseHA(st, Scope{Now: fuzzNow})
	})
}

// fuzz budget: 20000x
func FuzzParseReplStatus(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		jobs, _ := ParseReplStatus(s, time.UTC)
		for _, j := range jobs {
			if !jobID.MatchString(j.ID) {
				t.Fatalf("job id %q", j.ID)
			}
		}
		DiagnoseReplication(jobs, Scope{Now: fuzzNow})
	})
}

// fuzz budget: 20000x
func FuzzParseStorageStatus(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		st, _ := ParseStorageStatus(s)
		DiagnoseStorage(st, Scope{Now: fuzzNow})
	})
}

// fuzz budget: 20000x
func FuzzParseSections(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		secs, _ := ParseSections(s)
		c := &HAConfig{Resources: secs, Groups: secs, Rules: secs, Replication: secs, Storage: secs,
			Guests: map[string]Guest{}, Nodes: []string{"a", "b"}}
		for _, sec := range secs {
			c.Guests[sec.ID] = Guest{ID: sec.ID, Node: "a", Conf: ParseGuestConfig(s)}
		}
		DiagnoseHAReplication(c, Scope{Now: fuzzNow})
	})
}

// fuzz budget: 20000x
func FuzzParseGuestConfig(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		g := ParseGuestConfig(s)
		DiagnoseLocks([]GuestLock{{Guest: "1", Lock: g.Lock}}, Scope{Now: fuzzNow})
	})
}

// fuzz budget: 20000x
func FuzzParseClusterLog(f *testing.F) {
	seedAll(f)
	f.Fuzz(func(t *testing.T, s string) {
		evs := ParseClusterLog(s, fuzzMatcher)
		DiagnoseClusterLog(TrendOf(evs, fuzzNow, 24*time.Hour), Scope{Now: fuzzNow})
		LastQuorumLoss(evs)
	})
}

// fuzz budget: 20000x
func FuzzParseUnitStates(f *testing.F) {
	seedAll(f)
	f.Add("Id=pveproxy.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\n")
	f.Fuzz(func(t *testing.T, s string) {
		DiagnoseServices(ParseUnitStates(s), Scope{Now: fuzzNow})
	})
}
