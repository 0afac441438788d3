package tower

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ingestSpool keeps agents' batches on the tower's own disk while a shared
// store (PostgreSQL) cannot be reached, so that the towers keep taking
// agent data through the outage: a batch is written and synced to a file
// of its own before its agent is answered, and written to the store,
// oldest first, when the store answers again. While batches wait, new ones
// queue behind them, so an agent's records reach the store in order.
type ingestSpool struct {
	dir string
	max int64 // bytes; past it batches are refused (the agent keeps them)

	mu    sync.Mutex
	files []string // waiting, oldest first
	bytes int64
	seq   uint64
}

// maxIngestSpool bounds the spool: beyond it the tower answers 503 and
// the agents keep their batches in their own spools.
const maxIngestSpool = 1 << 30

// openIngestSpool opens (creating) the spool in dir and finds the batches
// a previous run left there.
func openIngestSpool(dir string) (*ingestSpool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &ingestSpool{dir: dir, max: maxIngestSpool}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".batch") {
			continue // a write cut short: its agent was never answered
		}
		if fi, err := e.Info(); err == nil {
			s.bytes += fi.Size()
			s.files = append(s.files, e.Name())
		}
	}
	slices.Sort(s.files)
	return s, nil
}

// pending is how many batches wait.
func (s *ingestSpool) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files)
}

// add writes b durably; it returns once the batch would survive a crash.
func (s *ingestSpool) add(b Batch) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+int64(len(data)) > s.max {
		return fmt.Errorf("the tower's ingest spool is full (%d bytes)", s.bytes)
	}
	s.seq++
	name := fmt.Sprintf("%020d-%06d.batch", time.Now().UnixNano(), s.seq%1000000)
	tmp := filepath.Join(s.dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(s.dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	s.files = append(s.files, name)
	s.bytes += int64(len(data))
	return nil
}

// oldest is the oldest waiting batch and its file ("" when none waits).
func (s *ingestSpool) oldest() (string, Batch, error) {
	s.mu.Lock()
	if len(s.files) == 0 {
		s.mu.Unlock()
		return "", Batch{}, nil
	}
	name := s.files[0]
	s.mu.Unlock()
	data, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return name, Batch{}, err
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return name, Batch{}, fmt.Errorf("%s: %w", name, err)
	}
	return name, b, nil
}

// done removes a batch the store took.
func (s *ingestSpool) done(name string) error {
	path := filepath.Join(s.dir, name)
	fi, statErr := os.Stat(path)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.files, name); i >= 0 {
		s.files = slices.Delete(s.files, i, i+1)
	}
	if statErr == nil {
		s.bytes -= fi.Size()
	}
	return nil
}

// spoolBatch keeps b in the ingest spool and notes the host as heard from;
// it returns what the agent may drop: the batch's highest sequence.
func (t *ingester) spoolBatch(b Batch) (uint64, error) {
	if err := t.spool.add(b); err != nil {
		return 0, err
	}
	t.metrics.spooled.Inc()
	var acked uint64
	for _, r := range b.Records {
		acked = max(acked, r.Seq)
	}
	return t.view.spooled(b, acked), nil
}

// drainSpool writes the waiting batches to the store, oldest first, until
// one fails; what they changed is applied to memState as ingest would.
func (t *ingester) drainSpool(ctx context.Context) {
	for ctx.Err() == nil {
		name, b, err := t.spool.oldest()
		if name == "" {
			return
		}
		if err != nil {
			t.log.Error("an ingest spool file cannot be read; it is left in place", "file", filepath.Join(t.spool.dir, name), "err", err)
			return
		}
		unlock := t.lockAgent(b.Agent)
		res, err := t.store.SaveBatch(ctx, b)
		if err == nil {
			t.view.lateFindings(b.Agent, res.Findings, b.Received)
			err = t.spool.done(name)
		}
		unlock()
		if err != nil {
			return
		}
		t.metrics.spooled.Dec()
		if t.spool.pending() == 0 {
			t.log.Info("the ingest spool is written to the store")
			t.kick()
		}
	}
}

// keepSpool drains the spool every second until ctx is done.
func (t *ingester) keepSpool(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		t.drainSpool(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
