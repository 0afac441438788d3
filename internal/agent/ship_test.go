package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// syncBuffer is a log destination read while the agent writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) count(sub string) int { return strings.Count(s.String(), sub) }

// ingest is a tower's ingest endpoint as far as an agent can tell: it
// takes a batch and acknowledges its last record, or answers 503 while
// down is set. It counts the attempts and the records it took.
type ingest struct {
	down     atomic.Bool
	attempts atomic.Int64
	records  atomic.Int64
}

func (in *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in.attempts.Add(1)
	if in.down.Load() {
		http.Error(w, `{"error":"the store is not writable"}`, http.StatusServiceUnavailable)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var env wire.Envelope
	if err := json.NewDecoder(zr).Decode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var reply wire.Reply
	if n := len(env.Records); n > 0 {
		reply.Acked = env.Records[n-1].Seq
		in.records.Add(int64(n))
	}
	_ = json.NewEncoder(w).Encode(reply)
}

// TestBackoffWhileTowerAway: while the tower is away (connection refused,
// or answering 503), records keep being spooled; the agent retries with a
// backoff that new records do not restart, warns once per backoff step,
// and says once, when delivery resumes, how long the tower was away and
// how many records it then sent.
func TestBackoffWhileTowerAway(t *testing.T) {
	for _, away := range []string{"connection refused", "503"} {
		t.Run(away, func(t *testing.T) {
			in := &ingest{}
			var srv *httptest.Server
			var url string
			switch away {
			case "503":
				in.down.Store(true)
				srv = httptest.NewServer(in)
				url = srv.URL
			default:
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				url = "http://" + l.Addr().String()
				l.Close() // nothing listens until the tower "starts"
			}
			var logs syncBuffer
			a, err := New(Config{Towers: []string{url}, Token: "tok", Name: "pve1", StateDir: t.TempDir(), Kmsg: "-",
				Log: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.towers[0].spool.Close() })
			const interval = 320 * time.Millisecond
			a.cfg.Interval, a.retryMin = interval, 10*time.Millisecond
			tw := a.towers[0]

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { a.deliverLoop(ctx, tw); close(done) }()
			defer func() { cancel(); <-done }()

			// Records arrive all the while (bounded: 300, one every 2 ms).
			const records = 300
			start := time.Now()
			tick := time.NewTicker(2 * time.Millisecond)
			for i := range records {
				a.status(wire.Status{Event: "test", Message: fmt.Sprint(i)})
				<-tick.C
			}
			tick.Stop()
			elapsed := time.Since(start)

			warnings := logs.count("tower unreachable")
			// Warnings come at 0, 10, 30, 70 … ms: at most one per doubling.
			maxWarnings := 2
			for gap := a.retryMin; gap < elapsed; gap *= 2 {
				maxWarnings++
			}
			if warnings == 0 || warnings > maxWarnings {
				t.Errorf("%d warnings in %s with %d records spooled, want 1 to %d (one per backoff step):\n%s",
					warnings, elapsed.Round(time.Millisecond), records, maxWarnings, logs.String())
			}
			if away == "503" {
				// Retries wait 10, 20 … 320 ms, then an interval: new records
				// do not bring them forward.
				maxAttempts := int64(8 + elapsed/interval)
				if n := in.attempts.Load(); n > maxAttempts {
					t.Errorf("%d delivery attempts in %s with %d records spooled, want at most %d", n, elapsed.Round(time.Millisecond), records, maxAttempts)
				}
			}

			// The tower comes back.
			switch away {
			case "503":
				in.down.Store(false)
			default:
				l, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
				if err != nil {
					t.Fatalf("listening again on the tower's port: %v", err)
				}
				srv = httptest.NewUnstartedServer(in)
				srv.Listener.Close()
				srv.Listener = l
				srv.Start()
			}
			defer srv.Close()
			deadline := time.Now().Add(20 * time.Second)
			poll := time.NewTicker(10 * time.Millisecond)
			defer poll.Stop()
			for logs.count("delivering to the tower again") == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no word that delivery resumed within 20s:\n%s", logs.String())
				}
				<-poll.C
			}
			if n := in.records.Load(); n != records {
				t.Errorf("the tower took %d records, want %d", n, records)
			}
			// Two more deliveries (heartbeats): still said once, no warning since.
			warnings = logs.count("tower unreachable")
			for after := in.attempts.Load(); in.attempts.Load() < after+2; {
				if time.Now().After(deadline) {
					t.Fatal("no heartbeat after delivery resumed")
				}
				<-poll.C
			}
			out := logs.String()
			if n := strings.Count(out, "delivering to the tower again"); n != 1 {
				t.Errorf("resumption told %d times, want once:\n%s", n, out)
			}
			if n := logs.count("tower unreachable"); n != warnings {
				t.Errorf("%d warnings after delivery resumed", n-warnings)
			}
			line := regexp.MustCompile(`msg="delivering to the tower again".*`).FindString(out)
			if !strings.Contains(line, fmt.Sprintf("records_sent=%d", records)) || !regexp.MustCompile(`down_for="?\d`).MatchString(line) {
				t.Errorf("resumption line %q, want the outage's length and records_sent=%d", line, records)
			}
		})
	}
}

func TestNewRefusesBadTowerAndInterval(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Towers: []string{"tower.lan:7450"}}, "did you mean http://tower.lan:7450"},
		{Config{Towers: []string{"ftp://tower.lan"}}, "want http:// or https://"},
		{Config{Towers: []string{"http://tower.lan:7450"}, Interval: -time.Second}, "want at least 100ms"},
		{Config{Towers: []string{"http://tower.lan:7450"}, Interval: time.Millisecond}, "want at least 100ms"},
	} {
		c.cfg.Token, c.cfg.StateDir = "tok", t.TempDir()
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(towers %q, interval %s): %v; want an error saying %q", c.cfg.Towers, c.cfg.Interval, err, c.want)
		}
	}
}

// TestRetryAfterHonoured: a tower that sheds load answers 429 with
// Retry-After; the agent does not come back sooner, though its own backoff
// would (10 ms here), and then delivers everything.
func TestRetryAfterHonoured(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Time
	in := &ingest{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		n := len(attempts)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"overloaded"}`, http.StatusTooManyRequests)
			return
		}
		in.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var logs syncBuffer
	a, err := New(Config{Towers: []string{srv.URL}, Token: "tok", Name: "pve1", StateDir: t.TempDir(), Kmsg: "-",
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.towers[0].spool.Close() })
	a.cfg.Interval, a.retryMin = 5*time.Second, 10*time.Millisecond
	a.status(wire.Status{Event: "test", Message: "one"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.deliverLoop(ctx, a.towers[0]); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(20 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for in.records.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered within 20s:\n%s", logs.String())
		}
		<-poll.C
	}
	mu.Lock()
	gap := attempts[1].Sub(attempts[0])
	mu.Unlock()
	if gap < time.Second {
		t.Errorf("came back after %s, want at least the 1s the tower asked for", gap)
	}
	if !strings.Contains(logs.String(), "the tower is overloaded") {
		t.Errorf("the warning does not say the tower is overloaded:\n%s", logs.String())
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 0 ", 0, true},
		{"Tue, 01 Dec 2026 22:00:30 GMT", 30 * time.Second, true},
		{"Tue, 01 Dec 2026 21:00:00 GMT", 0, true}, // in the past: now
		{"86400", maxRetryAfter, true},             // a day: capped
		{"", 0, false},
		{"soon", 0, false},
		{"-5", 0, false},
	} {
		got, ok := retryAfter(c.v, now)
		if got != c.want || ok != c.ok {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}
