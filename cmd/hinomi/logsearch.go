package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/agent"
	"github.com/hinomi/hinomi/internal/logstore"
	"github.com/hinomi/hinomi/internal/tower"
)

// followEvery is how often `logs search --follow` asks for new lines.
const followEvery = time.Second

// runLogsSearch is `hinomi logs search QUERY`: the tower's log store,
// searched through its API.
func runLogsSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logs search", "'QUERY' [flags]", "Search the lines every host shipped to the tower (and syslog senders sent it).\n"+
		"QUERY: words (all must appear), \"a phrase\", -word (must not), host:H unit:U source:S\n"+
		"priority:err (err or worse). Prints the newest --limit lines, oldest first; --follow then\n"+
		"prints new lines as the tower stores them. Exit status: 0 lines found, 1 none, 2 could not run.", stdout, stderr)
	c := towerFlags(fs.FlagSet)
	tokenFile := fs.String("token-file", "", "read the tower's API token from this `file`")
	configFile := fs.String("config", "", "on the tower's host: take its address and API token from its configuration `file` (tower.yaml)")
	var hosts multiFlag
	fs.Var(&hosts, "host", "only this `host`'s lines (repeatable)")
	since := fs.String("since", "", "only lines at or after this time (RFC 3339, \"2006-01-02 15:04:05\" UTC, or a duration ago such as 1h)")
	until := fs.String("until", "", "only lines before this time (same forms as --since)")
	around := fs.String("around", "", "what every host said in the --window before this instant (same forms as --since)")
	window := fs.Duration("window", time.Minute, "with --around: how far back")
	limit := fs.Int("limit", 200, "at most this many lines")
	follow := fs.Bool("follow", false, "keep printing new lines (Ctrl-C to stop)")
	asJSON := fs.Bool("json", false, "print each line as JSON (one object a line)")
	rest, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	if len(rest) > 1 {
		return fmt.Errorf("logs search: one query, quoted: hinomi logs search 'disk full host:pve1' (got %d arguments)", len(rest))
	}
	query := ""
	if len(rest) == 1 {
		query = rest[0]
	}
	if _, err := logstore.ParseQuery(query); err != nil {
		return fmt.Errorf("logs search: %w", err)
	}
	if *limit <= 0 {
		return fmt.Errorf("logs search: --limit %d: want at least 1", *limit)
	}
	if *configFile != "" {
		if err := c.fromTowerConfig(*configFile); err != nil {
			return fmt.Errorf("logs search: %w", err)
		}
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("logs search: --token-file: %w", err)
		}
		_ = c.token.Set(strings.TrimSpace(string(b)))
	}
	now := time.Now()
	v := url.Values{}
	v.Set("q", query)
	for _, h := range hosts {
		v.Add("host", h)
	}
	for _, p := range []struct{ name, val string }{{"since", *since}, {"until", *until}, {"around", *around}} {
		if p.val == "" {
			continue
		}
		at, err := tower.ParseWhen(p.val, now)
		if err != nil {
			return fmt.Errorf("logs search: --%s %w", p.name, err)
		}
		v.Set(p.name, at.UTC().Format(time.RFC3339Nano))
	}
	if *around != "" {
		v.Set("window", window.String())
	}
	v.Set("limit", strconv.Itoa(*limit))
	v.Set("newest", "true")
	lines, cursor, _, err := c.searchLogs(ctx, v)
	if err != nil {
		return err
	}
	slices.Reverse(lines)
	for _, l := range lines {
		printLogLine(stdout, l, *asJSON)
	}
	if !*follow {
		if len(lines) == 0 {
			return exitError{1}
		}
		return nil
	}
	v.Del("since")
	v.Del("until")
	v.Del("around")
	v.Del("newest")
	v.Set("limit", "10000")
	fmt.Fprintln(stderr, "hinomi logs search: following new lines (Ctrl-C to stop)")
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		v.Set("after", cursor)
		lines, next, missed, err := c.searchLogs(ctx, v)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(stderr, "hinomi logs search: %v (trying again)\n", err)
			continue
		}
		if missed > 0 {
			fmt.Fprintf(stderr, "hinomi logs search: %d lines stored meanwhile were not followed (the tower restarted, or this follow fell behind); search for them with --since\n", missed)
		}
		for _, l := range lines {
			printLogLine(stdout, l, *asJSON)
		}
		cursor = next
	}
}

// fromTowerConfig takes the tower's address (its listen address, on
// loopback when it listens everywhere) and API token from its config,
// unless --tower or --token were given.
func (c *towerClient) fromTowerConfig(path string) error {
	cfg, err := tower.LoadConfig(path)
	if err != nil {
		return err
	}
	if !c.url.set {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return fmt.Errorf("%s: listen %q: %w", path, cfg.Listen, err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		scheme := "http"
		if cfg.TLS.CertFile != "" {
			scheme = "https"
		}
		_ = c.url.Set(scheme + "://" + net.JoinHostPort(host, port))
	}
	if !c.token.set && cfg.APIToken != "" {
		_ = c.token.Set(cfg.APIToken)
	}
	return nil
}

// searchLogs asks GET /api/v1/logs and returns the lines, the cursor to
// follow from and how many lines a follow missed.
func (c *towerClient) searchLogs(ctx context.Context, v url.Values) ([]tower.LogLine, string, uint64, error) {
	base, err := agent.TowerURL(c.url.Get())
	if err != nil {
		return nil, "", 0, fmt.Errorf("--tower: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, base+"/api/v1/logs?"+v.Encode(), nil)
	if err != nil {
		return nil, "", 0, err
	}
	if tok := c.token.Get(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", 0, ctx.Err()
		}
		return nil, "", 0, towerError(base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, "", 0, fmt.Errorf("the tower's log search: %s: %s", resp.Status, e.Error)
	}
	var lines []tower.LogLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l tower.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, "", 0, fmt.Errorf("the tower's log search: a line that is not JSON: %w", err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, "", 0, fmt.Errorf("the tower's log search: %w", err)
	}
	missed, _ := strconv.ParseUint(resp.Header.Get(tower.MissedHeader), 10, 64)
	return lines, resp.Header.Get(tower.CursorHeader), missed, nil
}

// printLogLine prints a line as `TIME HOST UNIT: LINE`, or its JSON.
func printLogLine(w io.Writer, l tower.LogLine, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(l)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	who := l.Unit
	if who == "" {
		who = l.Source
	}
	fmt.Fprintf(w, "%s %s %s: %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000Z"), l.Host, who, strings.ReplaceAll(l.Line, "\n", "\\n"))
}
