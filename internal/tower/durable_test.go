package tower

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/store"
	"github.com/hinomi/hinomi/internal/wire"
)

// TestAckedBatchSurvivesSIGKILL: a tower in its own process acknowledges a
// batch and is killed with SIGKILL right after the reply; the database
// opened again holds every record acknowledged. (That the commit is also
// synced, for a power cut, is the store's synchronous=FULL:
// store.TestOpenSyncsEveryCommit.)
func TestAckedBatchSurvivesSIGKILL(t *testing.T) {
	sqliteOnly(t, "it reads SQLite's file after the kill")
	if cfg := os.Getenv("HINOMI_TEST_TOWER_CONFIG"); cfg != "" {
		runChildTower(t, cfg)
		return
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: 127.0.0.1:0\ndata_dir: "+dataDir+"\nagents:\n  - {name: pve1, token: "+tokenA+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAckedBatchSurvivesSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HINOMI_TEST_TOWER_CONFIG="+cfgFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := bufio.NewScanner(out)
	var addr string
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "tower-addr="); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the child tower did not say where it listens")
	}

	client := &http.Client{Timeout: 20 * time.Second}
	const batches, per = 5, 40
	var acked uint64
	for b := range batches {
		seqs := make([]uint64, per)
		for i := range seqs {
			seqs[i] = uint64(b*per + i + 1)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+wire.Path, bytes.NewReader(batch("pve1", "s1", seqs...)))
		req.Header.Set("Authorization", "Bearer "+tokenA)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var reply wire.Reply
		err = json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("batch %d: got %d (%v)", b, resp.StatusCode, err)
		}
		acked = reply.Acked
	}
	// Killed the moment the last reply arrived: no shutdown, no checkpoint.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	cmd.Wait()
	if acked != batches*per {
		t.Fatalf("acked %d; want %d", acked, batches*per)
	}

	st, err := store.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n, max int
	var hostAcked uint64
	if err := st.DB.QueryRow("SELECT count(*), coalesce(max(seq), 0) FROM records WHERE agent = 'pve1' AND spool = 's1'").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if err := st.DB.QueryRow("SELECT acked FROM hosts WHERE name = 'pve1'").Scan(&hostAcked); err != nil {
		t.Fatal(err)
	}
	if n != batches*per || uint64(max) != acked || hostAcked != acked {
		t.Fatalf("after SIGKILL the database holds %d records up to seq %d, host acked %d; want all %d acknowledged", n, max, hostAcked, acked)
	}
}

// runChildTower is the tower process TestAckedBatchSurvivesSIGKILL kills.
func runChildTower(t *testing.T, cfgFile string) {
	cfg, err := LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := newTestTower(t, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := tw.Listen()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("tower-addr=%s\n", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // bounded if the parent dies
	defer cancel()
	if err := tw.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
