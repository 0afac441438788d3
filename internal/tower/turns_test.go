package tower

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/wire"
)

// TestIngestBigBatchTakesTurns: a batch of large records is written in
// parts, and a small batch that arrives while the big one waits for the
// writer is stored between its parts instead of behind all of it. The big
// batch is still stored whole, acknowledged to its last record, and a
// finding in its last part reaches the tower's view.
func TestIngestBigBatchTakesTurns(t *testing.T) {
	sqliteOnly(t, "it holds SQLite's single writer and watches the order with a trigger")
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	srv := httptest.NewServer(tw.Handler())
	defer srv.Close()

	big := wire.Envelope{Agent: "pve1", Spool: "s1", Sent: c.Now()}
	pad := json.RawMessage(`{"p":"` + strings.Repeat("x", 2000) + `"}`)
	for i := range wire.MaxRecords - 1 {
		big.Records = append(big.Records, wire.Record{Seq: uint64(i + 1), Kind: wire.KindStatus, Time: c.Now(), Data: pad})
	}
	f := finding.Finding{Key: "FM-B2/uid 0", Mode: "FM-B2", Severity: finding.High, Subject: "uid 0", Summary: "inotify watches 97% used", Runbook: "FM-B2"}
	data, _ := json.Marshal(wire.Findings{Open: []finding.Finding{f}})
	big.Records = append(big.Records, wire.Record{Seq: wire.MaxRecords, Kind: wire.KindFindings, Time: c.Now(), Data: data})
	bigBody, _ := json.Marshal(big)
	if parts := len(splitTurns(big.Records, ingestTurn)); parts < 3 {
		t.Fatalf("the big batch makes %d parts; the test needs at least 3", parts)
	}

	// The order records are written in, kept by the database itself.
	if _, err := sqlDB(tw).Exec(`CREATE TABLE written(n INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT);
		CREATE TRIGGER written_order AFTER INSERT ON records BEGIN INSERT INTO written(agent) VALUES(new.agent); END;`); err != nil {
		t.Fatal(err)
	}
	// Hold the writer so that both batches queue behind it.
	release := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- tw.store.(*sqliteStore).db.Write(context.Background(), func(*sql.Tx) error { <-release; return nil })
	}()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	type answer struct {
		code  int
		reply wire.Reply
	}
	send := func(token string, body []byte) chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+wire.Path, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
			if err != nil {
				ch <- answer{}
				return
			}
			defer resp.Body.Close()
			var a answer
			a.code = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&a.reply)
			ch <- a
		}()
		return ch
	}
	waitQueued := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for tw.store.Queued() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d writes queued, want %d", tw.store.Queued(), n)
			}
			time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
		}
	}
	bigDone := send(tokenA, bigBody)
	waitQueued(1)
	smallDone := send(tokenB, batch("pve2", "s1", 1))
	waitQueued(2)
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if a := <-smallDone; a.code != 200 || a.reply.Acked != 1 {
		t.Fatalf("small batch: %d, acked %d; want 200, 1", a.code, a.reply.Acked)
	}
	if a := <-bigDone; a.code != 200 || a.reply.Acked != wire.MaxRecords {
		t.Fatalf("big batch: %d, acked %d; want 200, %d", a.code, a.reply.Acked, wire.MaxRecords)
	}

	small := count(t, tw, "SELECT n FROM written WHERE agent = 'pve2'")
	if after := count(t, tw, "SELECT count(*) FROM written WHERE agent = 'pve1' AND n > ?", small); after == 0 {
		t.Error("the small batch was written after all of the big one; want it between the big one's parts")
	}
	if n := count(t, tw, "SELECT count(*) FROM records WHERE agent = 'pve1'"); n != wire.MaxRecords {
		t.Errorf("%d records of the big batch stored, want %d", n, wire.MaxRecords)
	}
	if n := count(t, tw, "SELECT acked FROM hosts WHERE name = 'pve1'"); n != wire.MaxRecords {
		t.Errorf("pve1 acked %d in the store, want %d", n, wire.MaxRecords)
	}
	tw.mu.Lock()
	got := tw.findings["pve1"][f.Key]
	tw.mu.Unlock()
	if got == nil {
		t.Errorf("the finding in the big batch's last part is not in the tower's view")
	}
}

// TestSplitTurns: runs stay in order, cover every record once, and hold at
// most the limit unless one record alone is larger.
func TestSplitTurns(t *testing.T) {
	rec := func(n int) wire.Record { return wire.Record{Data: make(json.RawMessage, n)} }
	for _, tt := range []struct {
		name  string
		sizes []int
		want  []int // records per run
	}{
		{"small batch is one run", []int{10, 10, 10}, []int{3}},
		{"heartbeat", nil, []int{0}},
		{"exactly the limit", []int{50, 50}, []int{2}},
		{"one over", []int{50, 50, 1}, []int{2, 1}},
		{"a record over the limit alone", []int{10, 300, 10}, []int{1, 1, 1}},
		{"many", []int{40, 40, 40, 40, 40}, []int{2, 2, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var recs []wire.Record
			for _, n := range tt.sizes {
				recs = append(recs, rec(n))
			}
			var got []int
			for _, p := range splitTurns(recs, 100) {
				got = append(got, len(p))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got runs of %v; want %v", got, tt.want)
			}
		})
	}
}
