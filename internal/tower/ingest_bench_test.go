package tower

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// BenchmarkIngestHostileAgent measures other agents' ingest latency while
// one agent sends maximal batches: 20 agents post 3-record batches at 100
// batches/s in total for 5 s to a real tower on 127.0.0.1, while a hostile
// agent posts, back to back, a gzip batch of 200,000 small records (what
// fits 16 MiB decompressed) and a 500-record batch of 30 KiB records.
//
//	go test -run '^$' -bench IngestHostileAgent -benchtime 1x ./internal/tower
func BenchmarkIngestHostileAgent(b *testing.B) {
	const agents, rate, span = 20, 100, 5 * time.Second
	names := map[string]string{}
	for i := range agents + 1 {
		names[fmt.Sprintf("a%02d", i)] = fmt.Sprintf("tok-bench-%012d", i)
	}
	post := benchTower(b, names)
	gz := func(env wire.Envelope) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_ = json.NewEncoder(zw).Encode(env)
		_ = zw.Close()
		return buf.Bytes()
	}
	hostile := wire.Envelope{Agent: "a20", Spool: "s"}
	for i := range 200000 {
		hostile.Records = append(hostile.Records, wire.Record{Seq: uint64(i + 1), Kind: wire.KindStatus, Time: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), Data: json.RawMessage(`{"e":1}`)})
	}
	huge := gz(hostile)
	pad := strings.Repeat("x", 30<<10)
	wide := wire.Envelope{Agent: "a20", Spool: "w"}
	for i := range 500 {
		wide.Records = append(wide.Records, wire.Record{Seq: uint64(i + 1), Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"p":"` + pad + `"}`)})
	}
	for b.Loop() {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		hostileCodes := map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body := huge
				if n%2 == 1 {
					wide.Records[0].Seq = uint64(n) * 1000
					for i := range wide.Records {
						wide.Records[i].Seq = uint64(n)*1000 + uint64(i)
					}
					body = gz(wide)
				}
				code, _, _ := post("tok-bench-000000000020", body, true)
				hostileCodes[code]++
			}
		}()
		var mu sync.Mutex
		var lat []time.Duration
		codes := map[int]int{}
		tick := time.NewTicker(time.Second / rate)
		end := time.After(span)
		seq := make([]uint64, agents)
	loop:
		for i := 0; ; i++ {
			select {
			case <-end:
				break loop
			case <-tick.C:
			}
			a := i % agents
			seq[a] += 3
			s := seq[a]
			env := wire.Envelope{Agent: fmt.Sprintf("a%02d", a), Spool: "s"}
			for k := range uint64(3) {
				env.Records = append(env.Records, wire.Record{Seq: s - 2 + k, Kind: wire.KindStatus, Time: time.Now(), Data: json.RawMessage(`{"event":"cycle"}`)})
			}
			body, _ := json.Marshal(env)
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, d, _ := post(fmt.Sprintf("tok-bench-%012d", a), body, false)
				mu.Lock()
				lat = append(lat, d)
				codes[code]++
				mu.Unlock()
			}()
		}
		tick.Stop()
		close(stop)
		wg.Wait()
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
		b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		b.Logf("others: %d batches, codes %v, p50 %s p99 %s max %s; hostile codes %v", len(lat), codes, p(0.5), p(0.99), lat[len(lat)-1], hostileCodes)
	}
}
