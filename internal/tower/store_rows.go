package tower

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/notify"
	"github.com/hinomi/hinomi/internal/wire"
)

// rowIter is what both stores' result sets offer (database/sql's and
// pgx's): the two schemas hold the same columns as the same values, so
// one scanner per kind of row serves both.
type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collect scans every row; a row scan returns ok false to be skipped (a
// stored document that does not decode).
func collect[T any](rows rowIter, scan func(rowIter) (T, bool, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, ok, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, rows.Err()
}

const hostColumns = "name, first_seen, last_seen, boot_id, version, addr, interval_ns, dropped, lost, lost_reason, spool, acked"

func scanHost(r rowIter) (Host, bool, error) {
	var h Host
	var first, last, interval, dropped, lost, acked int64
	if err := r.Scan(&h.Name, &first, &last, &h.BootID, &h.Version, &h.Addr, &interval, &dropped, &lost, &h.LostReason, &h.Spool, &acked); err != nil {
		return h, false, err
	}
	h.FirstSeen, h.LastSeen, h.Interval = ns(first), ns(last), time.Duration(interval)
	h.Dropped, h.Lost, h.Acked = uint64(dropped), uint64(lost), uint64(acked)
	return h, true, nil
}

// scanOpenFinding reads host, opened, updated, data.
func scanOpenFinding(r rowIter) (Finding, bool, error) {
	var f Finding
	var opened, updated int64
	var data []byte
	if err := r.Scan(&f.Host, &opened, &updated, &data); err != nil {
		return f, false, err
	}
	if json.Unmarshal(data, &f.Finding) != nil {
		return f, false, nil
	}
	f.Opened, f.Updated = ns(opened), ns(updated)
	return f, true, nil
}

// scanJSON reads one column holding a JSON document of T.
func scanJSON[T any](r rowIter) (T, bool, error) {
	var v T
	var b []byte
	if err := r.Scan(&b); err != nil {
		return v, false, err
	}
	return v, json.Unmarshal(b, &v) == nil, nil
}

// scanRecord reads seq, time, data of a record of kind.
func scanRecord(kind string) func(rowIter) (wire.Record, bool, error) {
	return func(r rowIter) (wire.Record, bool, error) {
		var at, seq int64
		var data []byte
		if err := r.Scan(&seq, &at, &data); err != nil {
			return wire.Record{}, false, err
		}
		return wire.Record{Kind: kind, Seq: uint64(seq), Time: ns(at), Data: data}, true, nil
	}
}

// scanSpan reads opened, resolved, summary, severity.
func scanSpan(r rowIter) (FindingSpan, bool, error) {
	var opened, resolved int64
	var f FindingSpan
	if err := r.Scan(&opened, &resolved, &f.Summary, &f.Severity); err != nil {
		return f, false, err
	}
	f.Opened = ns(opened)
	if resolved > 0 {
		f.Resolved = ns(resolved)
	}
	return f, true, nil
}

// scanEvent reads time, key, host, event, text of an event of incident.
func scanEvent(incident int64) func(rowIter) (AlertEvent, bool, error) {
	return func(r rowIter) (AlertEvent, bool, error) {
		var at int64
		ev := AlertEvent{Incident: incident}
		if err := r.Scan(&at, &ev.Key, &ev.Host, &ev.Event, &ev.Text); err != nil {
			return ev, false, err
		}
		ev.At = ns(at)
		return ev, true, nil
	}
}

// scanOutboxMessage reads id, message (Msg nil if it does not decode).
func scanOutboxMessage(r rowIter) (OutboxMessage, bool, error) {
	var m OutboxMessage
	var raw []byte
	if err := r.Scan(&m.ID, &raw); err != nil {
		return m, false, err
	}
	var msg notify.Message
	if json.Unmarshal(raw, &msg) == nil {
		m.Msg = &msg
	}
	return m, true, nil
}

// decodeDue fills a due row's message, fallback and creation time from
// their stored forms.
func decodeDue(row *OutboxRow, raw []byte, fallback string, created int64) {
	if fallback != "" {
		row.Fallback = strings.Split(fallback, ",")
	}
	row.Created = time.Unix(0, created)
	row.BadMsg = json.Unmarshal(raw, &row.Msg)
}

const serviceColumns = "name, grp, public, status, since, first, last, message, reason, recent"

func scanService(r rowIter) (serviceRow, bool, error) {
	var s serviceRow
	var since, first, last int64
	if err := r.Scan(&s.name, &s.group, &s.public, &s.status, &since, &first, &last, &s.message, &s.reason, &s.recent); err != nil {
		return s, false, err
	}
	s.since, s.first, s.last = ns(since), ns(first), ns(last)
	return s, true, nil
}

// named is a row of one service's history.
type named[T any] struct {
	name string
	v    T
}

// scanDay reads name, day, up, degraded, n, worst.
func scanDay(r rowIter) (named[dayAgg], bool, error) {
	var d named[dayAgg]
	var day int64
	if err := r.Scan(&d.name, &day, &d.v.up, &d.v.degraded, &d.v.n, &d.v.worst); err != nil {
		return d, false, err
	}
	d.v.date = time.Unix(day, 0).UTC()
	return d, true, nil
}

// scanLatency reads name, bucket, sum, n.
func scanLatency(r rowIter) (named[latBucket], bool, error) {
	var b named[latBucket]
	var start int64
	if err := r.Scan(&b.name, &start, &b.v.sum, &b.v.n); err != nil {
		return b, false, err
	}
	b.v.start = time.Unix(start, 0).UTC()
	return b, true, nil
}

// joinHistory puts each day and latency bucket under its service.
func joinHistory(svcs []serviceRow, days []named[dayAgg], lat []named[latBucket]) []serviceRow {
	at := map[string]int{}
	for i, s := range svcs {
		at[s.name] = i
	}
	for _, d := range days {
		if i, ok := at[d.name]; ok {
			svcs[i].days = append(svcs[i].days, d.v)
		}
	}
	for _, b := range lat {
		if i, ok := at[b.name]; ok {
			svcs[i].lat = append(svcs[i].lat, b.v)
		}
	}
	return svcs
}
