package checks

import (
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/host"
)

// BenchmarkStorageChecksAbsent is what the DRBD, ZFS, md RAID and SMART
// checks cost doctor on a host without that software (no /proc/drbd, no
// zfs module, no /proc/mdstat, no disk that reports SMART), against the baseline of one read of /proc/stat. It
// prints both and their ratio.
func BenchmarkStorageChecksAbsent(b *testing.B) {
	src := host.Live()
	env := &Env{Src: src, Host: "bench", Now: time.Now()}
	cs := []func() (Result, error){
		func() (Result, error) { return checkDRBD(b.Context(), env) },
		func() (Result, error) { return checkZFS(b.Context(), env) },
		func() (Result, error) { return checkMDRAID(b.Context(), env) },
		func() (Result, error) { return checkSMART(b.Context(), env) },
	}
	var checks, base time.Duration
	for b.Loop() {
		t0 := time.Now()
		for _, c := range cs {
			if _, err := c(); err != ErrNotApplicable {
				b.Fatalf("on this host a storage check is applicable (%v): the benchmark measures their absence", err)
			}
		}
		t1 := time.Now()
		if _, err := src.ReadFile("/proc/stat"); err != nil {
			b.Fatal(err)
		}
		checks += t1.Sub(t0)
		base += time.Since(t1)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64(checks/n)/1e3, "µs-checks/op")
	b.ReportMetric(float64(base/n)/1e3, "µs-proc-stat/op")
	b.ReportMetric(float64(checks)/float64(base), "ratio")
}
