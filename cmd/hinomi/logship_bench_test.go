package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// BenchmarkAgentShipsLines measures what shipping its log lines costs the
// agent: a real tower and, one after the other, two real agents following
// a file written at 1,000 lines a second (syslog-like lines of about 120
// bytes) for 30 s, one with --ship-logs no (the baseline: the same log
// watch, every line through the signatures, none shipped) and one with
// the default. It reports each agent's CPU over the 30 s as a share of a
// core, measured from /proc after its start-up, and the difference, which
// is what shipping costs (target: under 2 % of a core).
//
//	go test -run '^$' -bench AgentShipsLines -benchtime 1x ./cmd/hinomi
func BenchmarkAgentShipsLines(b *testing.B) {
	const (
		rate   = 1000
		window = 30 * time.Second
	)
	dir := b.TempDir()
	addr := freePort(b)
	const token = "tok-bench-ship-aaaaaaaaaaaa"
	cfgPath := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %s\napi_token: %s\ndata_dir: %s\nagents: [{name: shiphost, token: %s}]\n",
		addr, testAPIToken, filepath.Join(dir, "tower"), token)), 0o600); err != nil {
		b.Fatal(err)
	}
	tw := start(b, "tower", "--config", cfgPath)
	tw.waitLine(b, regexp.MustCompile(`tower listening`), 20*time.Second)
	url := "http://" + addr

	run := func(name string, ship bool) time.Duration {
		logFile := filepath.Join(dir, name+".log")
		if err := os.WriteFile(logFile, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		shipFlag := "no"
		if ship {
			shipFlag = "yes"
		}
		ag := start(b, "agent", "--tower", url, "--token", token, "--name", "shiphost", "--state-dir", filepath.Join(dir, name),
			"--interval", "1h", "--kmsg", "-", "--journal", "no", "--container-logs", "no", "--log-file", logFile, "--ship-logs", shipFlag)
		defer ag.stop(b)
		ag.waitLine(b, regexp.MustCompile(`agent started`), 20*time.Second)
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		// The first diagnosis comes first: wait until the agent idles
		// (under 10 ms of CPU in half a second).
		pid := ag.cmd.Process.Pid
		for deadline := time.Now().Add(30 * time.Second); ; {
			c0, _ := procUsage(b, pid)
			time.Sleep(500 * time.Millisecond) // the sampling window, not a wait for state
			c1, _ := procUsage(b, pid)
			if c1-c0 < 10*time.Millisecond {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: the agent did not idle within 30 s", name)
			}
		}
		before, _ := procUsage(b, pid)
		start := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for time.Since(start) < window {
			<-tick.C
			for range rate / 10 {
				fmt.Fprintf(f, "Dec  2 03:%02d:%02d shiphost app[4242]: request %08d from 192.0.2.%d served in 12 ms status=200 bytes=5120\n",
					n/60000%60, n/1000%60, n, n%250)
				n++
			}
		}
		after, rss := procUsage(b, pid)
		took := time.Since(start)
		share := (after - before).Seconds() / took.Seconds()
		b.Logf("%s: %d lines in %s, agent CPU %s = %.2f %% of a core, peak RSS %.1f MB", name, n, took.Round(time.Millisecond), after-before, 100*share, float64(rss)/1e6)
		return time.Duration(share * float64(time.Second))
	}
	for range b.N {
		base := run("watching only (--ship-logs no)", false)
		ship := run("watching and shipping", true)
		b.ReportMetric(100*base.Seconds(), "baseline-%core")
		b.ReportMetric(100*ship.Seconds(), "shipping-%core")
		b.Logf("shipping 1,000 lines/s costs %.2f %% of a core more than watching them alone (%.2f %% vs %.2f %%; ratio %.2f)",
			100*(ship-base).Seconds(), 100*ship.Seconds(), 100*base.Seconds(), ship.Seconds()/max(base.Seconds(), 1e-9))
	}
}
