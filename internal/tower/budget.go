package tower

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// Each agent may send ingestRate bytes of batches (decompressed) a second
// on average, and ingestBurst at once. Decoding and storing a batch costs
// the tower in proportion to its size, and one agent posting the largest
// batches back to back (16 MiB decompressed each) kept a core busy and the
// disk syncing its records: the other agents' p99 went past 100 ms. An
// agent sends at most 1 MiB of records per batch, so 2 MiB/s drains a full
// 64 MiB spool in about half a minute; past its budget an agent is told to
// come back (429 with Retry-After) before its batch is read.
const (
	ingestRate  = 2 << 20
	ingestBurst = maxDecompressed
)

// byteBudget is a token bucket of bytes per agent; the zero value has the
// defaults above.
type byteBudget struct {
	rate, burst float64 // bytes per second, bytes; zero: the defaults
	mu          sync.Mutex
	agents      map[string]*bucket
}

type bucket struct {
	level float64 // bytes the agent may still send; negative: owed
	at    time.Time
}

// get returns the agent's bucket refilled to now; b.mu is held.
func (b *byteBudget) get(agent string, now time.Time) *bucket {
	if b.rate == 0 {
		b.rate, b.burst = ingestRate, ingestBurst
	}
	if b.agents == nil {
		b.agents = map[string]*bucket{}
	}
	k := b.agents[agent]
	if k == nil {
		k = &bucket{level: b.burst, at: now}
		b.agents[agent] = k
	}
	if now.After(k.at) {
		k.level = math.Min(b.burst, k.level+now.Sub(k.at).Seconds()*b.rate)
		k.at = now
	}
	return k
}

// wait is how long the agent must wait before its next batch is read:
// zero while it is within its budget, else until it has paid what it owes.
func (b *byteBudget) wait(agent string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.get(agent, now)
	if k.level >= 0 {
		return 0
	}
	return time.Duration(-k.level / b.rate * float64(time.Second))
}

// charge takes n bytes from the agent's budget; it may go into debt, so a
// batch within the size limits is always read whole.
func (b *byteBudget) charge(agent string, n int64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.get(agent, now).level -= float64(n)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// shedAgent answers 429 to an agent past its byte budget, with the wait
// until it is within it again (whole seconds, at least one).
func (t *ingester) shedAgent(w http.ResponseWriter, result *string, agent string, wait time.Duration) {
	*result = "shed"
	t.metrics.shed.Inc()
	secs := max(1, int(math.Ceil(wait.Seconds())))
	if t.once("budget " + agent) {
		t.log.Warn("agent sends more than its share of ingest: its batches are answered 429 with Retry-After (logged once a minute per agent; see hinomi_tower_ingest_shed_total)",
			"agent", agent, "bytes_per_second", ingestRate, "retry_after", secs)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(wire.Reply{Error: "this agent sent more than its share of the tower's ingest (" + strconv.Itoa(ingestRate>>20) + " MiB/s); send again after Retry-After"})
}
