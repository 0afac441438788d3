package proctable

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/procbpf"
	"github.com/hinomi/hinomi/internal/testload"
)

// BenchmarkScanUnderLoad times, under issue 10's load (2,000 processes,
// 100,000 descriptors, 50,000 inotify watches), the whole table read with
// the BPF pass already loaded (the agent's every interval) against the
// /proc pass (where the BPF pass cannot run), alternated, medians of 7; and
// the BPF pass's loading, which a one-shot doctor run pays once.
//
//	go test -run '^$' -bench ScanUnderLoad -benchtime 1x ./internal/proctable
func BenchmarkScanUnderLoad(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the BPF pass, and RLIMIT_NOFILE raised for the load")
	}
	testload.StartHostLoad(b, 2000, 100_000, 50_000)
	scan := func(o Options) (time.Duration, *Table) {
		start := time.Now()
		tb, err := ScanWith(b.Context(), host.Live(), o)
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(start), tb
	}
	if _, tb := scan(Options{}); tb.Pass != "bpf" {
		b.Fatalf("the BPF pass did not run: %s", tb.PassNote)
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	b.ResetTimer()
	for b.Loop() {
		var viaBPF, viaProc, loads, passes []time.Duration
		var procs, fds, watches int
		for range 7 {
			t, tb := scan(Options{})
			viaBPF = append(viaBPF, t)
			procs, fds, watches = len(tb.Procs), 0, 0
			for _, p := range tb.Procs {
				fds += max(p.FDs, 0)
				watches += p.InotifyWatches
			}
			t, _ = scan(Options{NoBPF: true})
			viaProc = append(viaProc, t)
			start := time.Now()
			pass, err := procbpf.Load()
			if err != nil {
				b.Fatal(err)
			}
			loads = append(loads, time.Since(start))
			res, err := pass.Run(b.Context())
			pass.Close()
			if err != nil {
				b.Fatal(err)
			}
			passes = append(passes, res.Took)
		}
		bp, pp, ld, ps := median(viaBPF), median(viaProc), median(loads), median(passes)
		b.ReportMetric(bp.Seconds(), "scan-bpf-s")
		b.ReportMetric(pp.Seconds(), "scan-proc-s")
		b.ReportMetric(bp.Seconds()/pp.Seconds(), "bpf/proc")
		b.ReportMetric(ld.Seconds(), "bpf-load-s")
		b.ReportMetric(ps.Seconds(), "bpf-pass-s")
		b.Logf("load: %d processes, %d fds, %d watches; table read with the BPF pass loaded %.1f ms, from /proc %.1f ms (%.2f); loading the BPF pass %.1f ms, its pass alone %.1f ms (medians of 7)",
			procs, fds, watches, ms(bp), ms(pp), bp.Seconds()/pp.Seconds(), ms(ld), ms(ps))
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
