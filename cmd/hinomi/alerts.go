package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hinomi/hinomi/internal/agent"
	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/tower"
)

// towerClient talks to a tower's API for the thin CLI commands.
type towerClient struct {
	url, token *envString
}

const defaultTowerURL = "http://127.0.0.1:7450"

func towerFlags(fs *flag.FlagSet) *towerClient {
	return &towerClient{
		url:   envFlag(fs, "tower", "HINOMI_TOWER", defaultTowerURL, "the tower's `URL` (default $HINOMI_TOWER, else "+defaultTowerURL+")"),
		token: envFlag(fs, "token", "HINOMI_API_TOKEN", "", "the tower's API `token` (its api_token), if it has one (default $HINOMI_API_TOKEN)"),
	}
}

func (c *towerClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	b, err := c.request(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// raw GETs a path and returns its body as it is (markdown, text).
func (c *towerClient) raw(ctx context.Context, path string) ([]byte, error) {
	return c.request(ctx, http.MethodGet, path, nil)
}

// towerTimeout bounds each request of the thin CLI commands.
const towerTimeout = 10 * time.Second

func (c *towerClient) request(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	base, err := agent.TowerURL(c.url.Get())
	if err != nil {
		return nil, fmt.Errorf("--tower: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	if tok := c.token.Get(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: towerTimeout}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, towerError(base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	return b, nil
}

// towerError says in words that no tower answers, rather than with the
// dialer's error; an error that is not about reaching it stays as it is.
func towerError(base string, err error) error {
	reason := ""
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		reason = "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		reason = "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		reason = "network unreachable"
	case errors.As(err, &dns):
		reason = "no such host " + dns.Name
		if !dns.IsNotFound {
			reason = "cannot resolve " + dns.Name + ": " + dns.Err
		}
	case errors.As(err, &ne) && ne.Timeout():
		reason = "no answer within " + towerTimeout.String()
	default:
		return fmt.Errorf("tower at %s: %w", redactURL(base), err)
	}
	return fmt.Errorf("no tower answers at %s (%s): is `hinomi tower` running?", redactURL(base), reason)
}

// redactURL hides a password in a URL, for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// printJSON prints the tower's JSON answer to a GET, indented.
func (c *towerClient) printJSON(ctx context.Context, path string, stdout io.Writer) error {
	b, err := c.raw(ctx, path)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return fmt.Errorf("GET %s: the tower's answer is not JSON: %w", path, err)
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(stdout)
	return err
}

func whoami() string {
	if u, err := user.Current(); err == nil {
		h, _ := os.Hostname()
		return u.Username + "@" + h
	}
	return "unknown"
}

func runAck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ack", "[flags] KEY", "Acknowledge a firing alert (hinomi status lists their keys, e.g. heartbeat/pve1): its repeats\nand escalation stop, and later messages say who took it.", stdout, stderr)
	c := towerFlags(fs.FlagSet)
	by := fs.String("by", whoami(), "who takes it")
	comment := fs.String("comment", "", "what you are doing about it")
	keys, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return errors.New("ack: name one alert key (hinomi status lists them), e.g. heartbeat/pve1")
	}
	var a tower.Alert
	if err := c.do(ctx, http.MethodPost, "/api/v1/alerts/ack", map[string]string{"key": keys[0], "by": *by, "comment": *comment}, &a); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "acknowledged %s (%s) as %s: no more repeats or escalation for this outage\n", a.Key, a.Title, a.Ack.By)
	return nil
}

func runSilence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := newFlags("silence "+sub, "", "", stdout, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  hinomi silence [list] [--json]  the silences in force
  hinomi silence add FLAGS        mute the alerts that match every flag given, for a while
  hinomi silence expire ID        end a silence now

Flags of "hinomi silence %s":
`, sub)
		fs.PrintDefaults()
	}
	c := towerFlags(fs.FlagSet)
	switch sub {
	case "list":
		asJSON := fs.Bool("json", false, "print the tower's JSON")
		if err := fs.parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("silence list: unexpected argument %q", fs.Arg(0))
		}
		if *asJSON {
			return c.printJSON(ctx, "/api/v1/silences", stdout)
		}
		var r struct {
			Silences []tower.Silence `json:"silences"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/silences", nil, &r); err != nil {
			return err
		}
		if len(r.Silences) == 0 {
			fmt.Fprintln(stdout, "No silence is in force.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMATCH\tUNTIL\tBY\tCOMMENT")
		for _, s := range r.Silences {
			m, _ := json.Marshal(s.Match)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, m, s.Ends.Local().Format("2006-01-02 15:04 MST"), s.CreatedBy, s.Comment)
		}
		return tw.Flush()
	case "add":
		var m tower.Match
		fs.StringVar(&m.Host, "host", "", "hosts to silence (shell pattern, e.g. pve*)")
		fs.StringVar(&m.Key, "key", "", "alert keys to silence (shell pattern)")
		kind := fs.String("kind", "", "heartbeat, finding, probe, peer (comma-separated)")
		severity := fs.String("severity", "", "severities to silence (comma-separated)")
		dur := fs.Duration("for", time.Hour, "how long")
		by := fs.String("by", whoami(), "who silences")
		comment := fs.String("comment", "", "why")
		if err := fs.parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("silence add: unexpected argument %q (the alerts to mute are chosen with flags)", fs.Arg(0))
		}
		if *kind != "" {
			m.Kind = strings.Split(*kind, ",")
		}
		if *severity != "" {
			m.Severity = strings.Split(*severity, ",")
		}
		var s tower.Silence
		in := tower.Silence{Match: m, Starts: time.Now(), Ends: time.Now().Add(*dur), CreatedBy: *by, Comment: *comment}
		if err := c.do(ctx, http.MethodPost, "/api/v1/silences", in, &s); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "silence %s until %s\n", s.ID, s.Ends.Local().Format("2006-01-02 15:04:05"))
		return nil
	case "expire":
		ids, err := fs.parseInterspersed(args)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return errors.New("silence expire: name one silence ID (hinomi silence list)")
		}
		if err := c.do(ctx, http.MethodDelete, "/api/v1/silences/"+ids[0], nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "silence %s expired\n", ids[0])
		return nil
	}
	fs.SetOutput(stderr)
	fmt.Fprintf(stderr, "hinomi silence: unknown command %q\n\n", sub)
	fs.Usage()
	return usageError{fmt.Errorf("silence: unknown command %q", sub)}
}

func runIncidents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("incidents", "[flags] [ID]", "List the incidents, or print one's timeline (ID), its postmortem draft, or add a note to it.", stdout, stderr)
	c := towerFlags(fs.FlagSet)
	postmortem := fs.Bool("postmortem", false, "print the incident as a markdown postmortem draft")
	note := fs.String("note", "", "add this note to the incident")
	by := fs.String("by", whoami(), "who writes the note")
	asJSON := fs.Bool("json", false, "print the tower's JSON (the list, or the incident with its timeline)")
	ids, err := fs.parseInterspersed(args)
	if err != nil {
		return err
	}
	if *asJSON && (*postmortem || *note != "") {
		return errors.New("incidents: --json prints the list or one incident; not with --postmortem or --note")
	}
	if len(ids) == 0 && (*postmortem || *note != "") {
		return errors.New("incidents: --postmortem and --note need an incident ID (hinomi incidents lists them)")
	}
	if len(ids) == 0 && *asJSON {
		return c.printJSON(ctx, "/api/v1/incidents", stdout)
	}
	if len(ids) == 0 {
		var r struct {
			Incidents []tower.Incident `json:"incidents"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/incidents", nil, &r); err != nil {
			return err
		}
		if len(r.Incidents) == 0 {
			fmt.Fprintln(stdout, "No incident.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		// BEGAN is when the impact began (the first alert went bad), not
		// when it was detected.
		fmt.Fprintln(tw, "ID\tBEGAN\tSTATUS\tSEVERITY\tHOSTS\tTITLE")
		for _, in := range r.Incidents {
			status := "open"
			if !in.Closed.IsZero() {
				status = "resolved, lasted " + finding.HumanDuration(in.Closed.Sub(in.ImpactStart()))
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.ImpactStart().Local().Format("2006-01-02 15:04:05 MST"), status,
				strings.ToUpper(in.Severity), strings.Join(in.Hosts, ","), in.Title)
		}
		return tw.Flush()
	}
	if len(ids) != 1 {
		return errors.New("incidents: name one incident ID")
	}
	id := ids[0]
	if *note != "" {
		if err := c.do(ctx, http.MethodPost, "/api/v1/incidents/"+id+"/notes", map[string]string{"by": *by, "text": *note}, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "note added to incident %s\n", id)
		return nil
	}
	if *asJSON {
		return c.printJSON(ctx, "/api/v1/incidents/"+url.PathEscape(id), stdout)
	}
	if *postmortem {
		md, err := c.raw(ctx, "/api/v1/incidents/"+id+"/postmortem")
		if err != nil {
			return err
		}
		_, err = stdout.Write(md)
		return err
	}
	var r struct {
		Incident tower.Incident `json:"incident"`
		Timeline []tower.Event  `json:"timeline"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/incidents/"+id, nil, &r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Incident %d: %s (%s)\n\n", r.Incident.ID, r.Incident.Title, strings.Join(r.Incident.Hosts, ", "))
	for _, e := range r.Timeline {
		fmt.Fprintf(stdout, "%s  %-10s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Host, e.Text)
	}
	return nil
}
