package logstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// VictoriaLogs keeps the lines in a VictoriaLogs server: its JSON-lines
// ingest API for Append and its LogsQL query API for Search. Host, source
// and unit make a line's stream; priority and the Fields are plain fields.
type VictoriaLogs struct {
	base   *url.URL
	client *http.Client
	now    func() time.Time

	invalid, cut atomic.Int64
}

// vlReserved are the names the backend gives its own fields; an entry's
// Fields of the same names are stored with vlFieldPrefix.
var vlReserved = map[string]bool{"_msg": true, "_time": true, "_stream": true, "_stream_id": true,
	"host": true, "source": true, "unit": true, "priority": true}

const vlFieldPrefix = "field."

// vlMissingMsg starts what VictoriaLogs returns for a line stored with an
// empty message.
const vlMissingMsg = "missing _msg field"

// OpenVictoriaLogs uses the VictoriaLogs server at baseURL
// (http://127.0.0.1:9428). It does not contact it: a server that is down
// makes Append and Search fail, not the tower's start.
func OpenVictoriaLogs(_ context.Context, baseURL string, opts Options) (Store, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("logstore: VictoriaLogs URL %q: want http://HOST:PORT", baseURL)
	}
	v := &VictoriaLogs{base: u, client: opts.HTTPClient, now: opts.Now}
	if v.client == nil {
		v.client = &http.Client{Timeout: 30 * time.Second}
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

func (v *VictoriaLogs) endpoint(path string, q url.Values) string {
	u := *v.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	return u.String()
}

// Append sends entries in one request; they are stored when VictoriaLogs
// answers 2xx (it makes them searchable within a second or so).
func (v *VictoriaLogs) Append(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return ctx.Err()
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	row := map[string]string{}
	for _, e := range entries {
		e, invalid, cut := sanitize(e, v.now)
		if invalid {
			v.invalid.Add(1)
		}
		if cut {
			v.cut.Add(1)
		}
		clear(row)
		for k, val := range e.Fields {
			if vlReserved[k] || strings.HasPrefix(k, "_") || strings.HasPrefix(k, vlFieldPrefix) {
				k = vlFieldPrefix + k
			}
			row[k] = val
		}
		row["_time"] = e.Time.UTC().Format(time.RFC3339Nano)
		row["_msg"] = e.Line
		row["host"] = e.Host
		row["source"] = e.Source
		row["unit"] = e.Unit
		row["priority"] = strconv.Itoa(e.Priority)
		if err := enc.Encode(row); err != nil {
			return fmt.Errorf("logstore: %w", err)
		}
	}
	q := url.Values{"_stream_fields": {"host,source,unit"}, "_msg_field": {"_msg"}, "_time_field": {"_time"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint("/insert/jsonline", q), &body)
	if err != nil {
		return fmt.Errorf("logstore: %w", err)
	}
	req.Header.Set("Content-Type", "application/stream+json")
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("logstore: VictoriaLogs ingest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("logstore: VictoriaLogs refused %d lines: %s: %s", len(entries), resp.Status, strings.TrimSpace(string(msg)))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// LogsQL translates q to a LogsQL query, with its sort and limit pipes.
func LogsQL(q Query) string {
	var f []string
	for _, t := range q.Terms {
		neg := ""
		if t.Not {
			neg = "-"
		}
		switch t.Field {
		case "":
			f = append(f, neg+"i("+strconv.Quote(t.Text)+")")
		case "priority":
			p, err := ParsePriority(t.Text)
			if err != nil {
				p = 7
			}
			f = append(f, fmt.Sprintf("%spriority:range[0, %d]", neg, p))
		default:
			f = append(f, neg+t.Field+":="+strconv.Quote(t.Text))
		}
	}
	in := func(field string, vals []string) {
		if len(vals) == 0 {
			return
		}
		qs := make([]string, len(vals))
		for i, s := range vals {
			qs[i] = strconv.Quote(s)
		}
		f = append(f, field+":in("+strings.Join(qs, ", ")+")")
	}
	in("host", q.Hosts)
	in("unit", q.Units)
	if q.MaxPriority >= 0 && q.MaxPriority < 7 {
		f = append(f, fmt.Sprintf("priority:range[0, %d]", q.MaxPriority))
	}
	if !q.Since.IsZero() {
		f = append(f, "_time:>="+q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		f = append(f, "_time:<"+q.Until.UTC().Format(time.RFC3339Nano))
	}
	if len(f) == 0 {
		f = append(f, "*")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	order := "_time"
	if q.Newest {
		order = "_time desc"
	}
	return fmt.Sprintf("%s | sort by (%s) | limit %d", strings.Join(f, " "), order, limit)
}

// Search runs q as LogsQL and passes on the entries as they are read.
func (v *VictoriaLogs) Search(ctx context.Context, q Query, fn func(Entry) bool) error {
	for _, t := range q.Terms {
		if t.Field != "" && !queryFields[t.Field] {
			return errUnknownField(t.Field)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := v.query(ctx, LogsQL(q))
	if err != nil {
		return err
	}
	defer rows.Close()
	sc := bufio.NewScanner(rows)
	sc.Buffer(make([]byte, 64<<10), 8*MaxLine+(1<<20))
	for sc.Scan() {
		e, err := vlEntry(sc.Bytes())
		if err != nil {
			return err
		}
		if !fn(e) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("logstore: reading VictoriaLogs' answer: %w", err)
	}
	return nil
}

func (v *VictoriaLogs) query(ctx context.Context, logsql string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint("/select/logsql/query", nil),
		strings.NewReader(url.Values{"query": {logsql}}.Encode()))
	if err != nil {
		return nil, fmt.Errorf("logstore: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("logstore: VictoriaLogs query: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("logstore: VictoriaLogs query %q: %s: %s", logsql, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// vlEntry reads one row of a LogsQL answer.
func vlEntry(b []byte) (Entry, error) {
	var row map[string]string
	if err := json.Unmarshal(b, &row); err != nil {
		return Entry{}, fmt.Errorf("logstore: a row of VictoriaLogs' answer: %w", err)
	}
	e := Entry{Priority: -1}
	for k, val := range row {
		switch k {
		case "_time":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return Entry{}, fmt.Errorf("logstore: a row of VictoriaLogs' answer: %w", err)
			}
			e.Time = t.UTC()
		case "_msg":
			if !strings.HasPrefix(val, vlMissingMsg) {
				e.Line = val
			}
		case "host":
			e.Host = val
		case "source":
			e.Source = val
		case "unit":
			e.Unit = val
		case "priority":
			if p, err := strconv.Atoi(val); err == nil {
				e.Priority = p
			}
		case "_stream", "_stream_id":
		default:
			if e.Fields == nil {
				e.Fields = map[string]string{}
			}
			e.Fields[strings.TrimPrefix(k, vlFieldPrefix)] = val
		}
	}
	return e, nil
}

// Stats counts the lines VictoriaLogs holds and their time range; the bytes
// on disk are its own figure (vl_data_size_bytes). VictoriaLogs does not
// count what its retention dropped.
func (v *VictoriaLogs) Stats(ctx context.Context) (Stats, error) {
	st := Stats{InvalidUTF8: v.invalid.Load(), CutLines: v.cut.Load()}
	rows, err := v.query(ctx, "* | stats count() lines, min(_time) oldest, max(_time) newest")
	if err != nil {
		return st, err
	}
	defer rows.Close()
	var row map[string]string
	if err := json.NewDecoder(rows).Decode(&row); err != nil && err != io.EOF {
		return st, fmt.Errorf("logstore: VictoriaLogs stats: %w", err)
	}
	st.Lines, _ = strconv.ParseInt(row["lines"], 10, 64)
	if st.Lines > 0 {
		st.Oldest, _ = time.Parse(time.RFC3339Nano, row["oldest"])
		st.Newest, _ = time.Parse(time.RFC3339Nano, row["newest"])
	}
	st.DiskBytes, _ = v.dataSize(ctx)
	return st, nil
}

// dataSize sums vl_data_size_bytes from VictoriaLogs' /metrics.
func (v *VictoriaLogs) dataSize(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.endpoint("/metrics", nil), nil)
	if err != nil {
		return 0, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vl_data_size_bytes") {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				n, _ := strconv.ParseFloat(line[i+1:], 64)
				total += int64(n)
			}
		}
	}
	return total, sc.Err()
}

// Close releases idle connections; VictoriaLogs keeps the lines.
func (v *VictoriaLogs) Close() error {
	v.client.CloseIdleConnections()
	return nil
}
