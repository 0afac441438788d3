package spool

import (
	"testing"
)

// record200 is a 200-byte payload, about a heartbeat or a finding.
var record200 = []byte(`{"kind":"finding","id":"FM-B2","severity":"medium","host":"pve1","since":"2026-11-25T21:35:31Z","evidence":{"inotify_watches":173282,"limit":192536},"runbook":"FM-B2","note":"padding to 200 bytes..."}`)

func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{false, true} {
		name := "nosync"
		if sync {
			name = "sync"
		}
		b.Run(name, func(b *testing.B) {
			s := open(b, b.TempDir(), Options{Sync: sync})
			b.SetBytes(int64(len(record200)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Append(record200); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkPeekAck ships records in batches of 500 as the shipper would:
// Peek, then Ack the last one (which writes the state file).
func BenchmarkPeekAck(b *testing.B) {
	const batch = 500
	s := open(b, b.TempDir(), Options{})
	shipped := 0
	for shipped < b.N {
		b.StopTimer()
		for range batch {
			if _, err := s.Append(record200); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		recs, err := s.Peek(batch, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) != batch {
			b.Fatalf("Peek returned %d records; want %d", len(recs), batch)
		}
		if err := s.Ack(recs[len(recs)-1].Seq); err != nil {
			b.Fatal(err)
		}
		shipped += len(recs)
	}
	b.ReportMetric(float64(shipped)/b.Elapsed().Seconds(), "records/s")
}
