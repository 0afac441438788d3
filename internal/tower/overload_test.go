package tower

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// TestIngestCapsRecordsPerBatch: a batch of more records than an agent
// ever sends in one is refused whole, saying the limit.
func TestIngestCapsRecordsPerBatch(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	seqs := make([]uint64, wire.MaxRecords+1)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	rec, reply := post(t, tw.Handler(), tokenA, batch("pve1", "s1", seqs...))
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(reply.Error, "at most 500 per batch") {
		t.Errorf("%d-record batch: %d %q, want 413 saying the limit", len(seqs), rec.Code, reply.Error)
	}
	if n := count(t, tw, "SELECT count(*) FROM records"); n != 0 {
		t.Errorf("%d records stored from the refused batch", n)
	}
	if rec, _ := post(t, tw.Handler(), tokenA, batch("pve1", "s1", seqs[:wire.MaxRecords]...)); rec.Code != 200 {
		t.Errorf("%d-record batch: %d, want 200", wire.MaxRecords, rec.Code)
	}
}

// TestIngestShedsLoad: with the writer held up and maxIngest batches
// waiting for it, the next batch is answered at once with 429 and
// Retry-After instead of joining the queue; the waiting ones are stored
// when the writer moves again.
func TestIngestShedsLoad(t *testing.T) {
	sqliteOnly(t, "it holds SQLite's single writer")
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	srv := httptest.NewServer(tw.Handler())
	defer srv.Close()
	release := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- tw.store.(*sqliteStore).db.Write(context.Background(), func(*sql.Tx) error { <-release; return nil })
	}()
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(token string, body []byte) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+wire.Path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	codes := make(chan int, maxIngest)
	for i := range maxIngest {
		tok, name := tokenA, "pve1"
		if i%2 == 1 {
			tok, name = tokenB, "pve2"
		}
		go func() {
			resp, err := send(tok, batch(name, "s1", uint64(i/2+1)))
			if err != nil {
				codes <- 0
				return
			}
			codes <- resp.StatusCode
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(tw.in.slots) < maxIngest {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("only %d batches in flight", len(tw.in.slots))
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Post(srv.URL+wire.Path, "application/json", bytes.NewReader(batch("pve1", "s2", 1)))
	if err != nil {
		close(release)
		t.Fatalf("a batch while overloaded: %v, want an immediate 429", err)
	}
	var reply wire.Reply
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || reply.Error == "" {
		t.Errorf("a batch while overloaded: %d, Retry-After %q, %q; want 429, 2 and a reason", resp.StatusCode, resp.Header.Get("Retry-After"), reply.Error)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the 429 took %s", d)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for range maxIngest {
		if code := <-codes; code != 200 {
			t.Errorf("a waiting batch got %d, want 200", code)
		}
	}
	if n := count(t, tw, "SELECT count(*) FROM records"); n != maxIngest {
		t.Errorf("%d records stored, want %d", n, maxIngest)
	}
	if _, body := serve(t, tw.Handler(), "/metrics"); !strings.Contains(body, "hinomi_tower_ingest_shed_total 1") {
		t.Error("metrics do not count the shed batch")
	}
}

// TestIngestRefusesOversizedGzip: a gzip batch that decompresses past the
// bound is a 413 that says so, not a "malformed JSON" 400.
func TestIngestRefusesOversizedGzip(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)}
	tw := newTower(t, c, "")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"agent":"pve1","spool":"s1","records":[],"pad":"`))
	_, _ = zw.Write(bytes.Repeat([]byte("x"), maxDecompressed))
	_, _ = zw.Write([]byte(`"}`))
	_ = zw.Close()
	req := httptest.NewRequest(http.MethodPost, wire.Path, &buf)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	tw.Handler().ServeHTTP(rec, req)
	var reply wire.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &reply)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(reply.Error, "decompressed") {
		t.Errorf("oversized gzip batch: %d %q, want 413 saying it is too large decompressed", rec.Code, reply.Error)
	}
}
