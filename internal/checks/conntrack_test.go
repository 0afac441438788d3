package checks

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/proctable"
)

// The kernel lines are as a 6.18 kernel wrote them when a test filled the
// table of a namespace made with `ip netns add`; the older form names no
// namespace and belongs to the table the doctor sees.
func TestConntrackDropsSplitByNamespace(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 55, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(-d); return &v }
	src := writeSnapshot(t, map[string][]byte{
		"proc/sys/net/netfilter/nf_conntrack_count": []byte("12\n"),
		"proc/sys/net/netfilter/nf_conntrack_max":   []byte("262144\n"),
		"probes/conntrack-netns.json": []byte(`{"self": 4026531840, "pids": {"4026532391": 4242},
			"names": {"4026532391": "hinomi-ct4242-b"}}`),
	})
	env := &Env{
		Src: src, Now: now, Log: slog.New(slog.DiscardHandler),
		Procs: &proctable.Table{Procs: []*proctable.Proc{{PID: 4242, Comm: "haproxy",
			Owner: proctable.Owner{Kind: "docker", ID: "7f75b802498bec5b571ea552160c6c7788560b812fdefcb38792583c119ab998", Name: "edge"}}}},
		Kernel: &KernelLog{Lines: []finding.Line{
			{Time: at(3 * time.Hour), Source: "kernel", Text: "nf_conntrack: table full, dropping packet"},
			{Time: at(2 * time.Minute), Source: "kernel", Text: "nf_conntrack: nf_conntrack: table full in netns 4026532391, dropping packet"},
			{Time: at(time.Minute), Source: "kernel", Text: "nf_conntrack: nf_conntrack: table full in netns 4026531840, dropping packet"},
		}},
	}
	res, err := checkConntrack(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]finding.Finding{}
	for _, f := range res.Findings {
		got[f.Subject] = f
	}
	if len(got) != 2 {
		t.Fatalf("findings %v; want the host's table and netns 4026532391", res.Findings)
	}
	own := got["conntrack"]
	if own.Severity != finding.High || len(own.Evidence.Lines) != 2 {
		t.Errorf("own table: severity %s with %d lines; want high (a drop a minute ago) with the unnamed and own-namespace lines: %+v",
			own.Severity, len(own.Evidence.Lines), own)
	}
	other := got["conntrack netns 4026532391"]
	if other.Severity != finding.High || len(other.Evidence.Lines) != 1 {
		t.Errorf("other namespace: severity %s with %d lines; want high with its one line", other.Severity, len(other.Evidence.Lines))
	}
	want := "The connection-tracking table of container edge (network namespace 4026532391, ip netns hinomi-ct4242-b) was full"
	if len(other.Summary) < len(want) || other.Summary[:len(want)] != want {
		t.Errorf("summary %q; want it to start %q", other.Summary, want)
	}
	if other.Evidence.Vars["container"] != "edge" || other.Evidence.Vars["netns"] != "4026532391" {
		t.Errorf("vars %v", other.Evidence.Vars)
	}
}
