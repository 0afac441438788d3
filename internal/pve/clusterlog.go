package pve

import (
	"sort"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/logline"
	"github.com/hinomi/hinomi/internal/signatures"
)

// EventKind classifies a corosync, knet, pmxcfs or pve-ha line.
type EventKind string

// The kinds of cluster events the trend counts.
const (
	TokenLost   EventKind = "token-lost"   // [TOTEM ] Token has not been received in N ms
	LinkDown    EventKind = "link-down"    // [KNET  ] link: host: N link: L is down
	LinkUp      EventKind = "link-up"      // [KNET  ] rx: host: N link: L is up
	Membership  EventKind = "membership"   // [QUORUM] Members[N]: the membership changed
	MembersLeft EventKind = "members-left" // [TOTEM ] A new membership (…) was formed. Members left: 1 3
	QuorumLost  EventKind = "quorum-lost"  // non-primary component / pmxcfs node lost quorum
	QuorumBack  EventKind = "quorum-back"  // primary component / pmxcfs node has quorum
	CPGFailed   EventKind = "cpg-failed"   // pmxcfs [dcdb] crit: cpg_send_message failed
	HALostLock  EventKind = "ha-lost-lock" // pve-ha-lrm/crm lost lock / lost_agent_lock
	Retransmit  EventKind = "retransmit"   // [TOTEM ] Retransmit List:
	WatchdogExp EventKind = "watchdog"     // watchdog-mux: client watchdog expired
)

// Event is one classified line.
type Event struct {
	Kind EventKind
	// Time is zero when the line carried none (a pasted excerpt).
	Time time.Time
	// Peer is the corosync node ID a knet line names.
	Peer, Link string
	// Left are the node IDs of a "Members left:" line.
	Left []string
	// Program is corosync, pmxcfs, pve-ha-lrm … when the line says.
	Program string
	// Text is the whole line; Message is the line without its time,
	// host and program prefix.
	Text, Message string
}

// kindOf maps the signature catalogue's corosync, knet, pmxcfs, pve-ha and
// watchdog-mux signatures (internal/signatures/catalogue.yaml, FM-D5..D7)
// to the events the trend counts.
var kindOf = map[string]EventKind{
	"corosync-token-timeout":   TokenLost,
	"knet-link-down":           LinkDown,
	"knet-link-up":             LinkUp,
	"corosync-members-changed": Membership,
	"corosync-members-left":    MembersLeft,
	"corosync-quorum-lost":     QuorumLost,
	"pmxcfs-lost-quorum":       QuorumLost,
	"pacemaker-quorum-lost":    QuorumLost,
	"corosync-quorum-regained": QuorumBack,
	"pmxcfs-quorum-regained":   QuorumBack,
	"pve-ha-lost-lock":         HALostLock,
	"pve-ha-lost-agent-lock":   HALostLock,
	"corosync-retransmit":      Retransmit,
	"watchdog-mux-expired":     WatchdogExp,
	"pmxcfs-crit":              CPGFailed, // only its cpg_send_message reason, see below
}

// LogMatcher is a copy of m (the built-in catalogue's when m is nil) that
// dates zone-less and year-less lines with ctx.
func LogMatcher(m *signatures.Matcher, ctx logline.Context) (*signatures.Matcher, error) {
	if m == nil {
		cat, err := signatures.Builtin()
		if err != nil {
			return nil, err
		}
		m = signatures.NewMatcher(cat)
	}
	c := *m
	c.Context = ctx
	return &c, nil
}

// ParseClusterLog picks the cluster events out of a log with the signature
// engine: journalctl output (any -o short* format), syslog, corosync's own
// log file, or a paste without times. m's Context dates lines that leave
// out the year or the zone.
func ParseClusterLog(text string, m *signatures.Matcher) []Event {
	var out []Event
	_, _ = m.Scan(strings.NewReader(strings.Join(lines(text), "\n")), "cluster log", func(se signatures.Event) {
		kind, ok := kindOf[se.Sig.ID]
		if !ok {
			return
		}
		if se.Sig.ID == "pmxcfs-crit" && se.Fields["reason"] != "cpg_send_message failed" {
			return
		}
		ev := Event{Kind: kind, Time: se.Entry.Time, Program: se.Entry.Source, Text: strings.TrimSpace(se.Line), Message: strings.TrimSpace(se.Entry.Message)}
		if ev.Message == "" {
			ev.Message = ev.Text
		}
		switch kind {
		case LinkDown, LinkUp:
			ev.Peer, ev.Link = se.Fields["host_id"], se.Fields["link"]
		case MembersLeft:
			ev.Left = strings.Fields(se.Fields["node"])
		}
		out = append(out, ev)
	})
	return out
}

// Trend is the cluster events of a window, counted.
type Trend struct {
	From, To time.Time
	// Timed is false when the lines carried no times: the counts are of
	// the whole text.
	Timed bool
	// Counts by kind over the window; LastHour over its last hour.
	Counts, LastHour map[EventKind]int
	// PeakHour is the worst clock hour by token losses plus link-downs.
	PeakHour      time.Time
	PeakHourCount int
	// Peers counts link-downs and departures per corosync node ID.
	Peers map[string]*PeerTrend
	// First and Last trouble event (token loss, link down, quorum loss).
	First, Last *Event
}

// PeerTrend is one peer's trouble.
type PeerTrend struct {
	ID         string
	LinkDowns  int
	Departures int
	// LastHour counts link-downs in the window's last hour.
	LastHour int
	// Link is the knet link number of its last link-down.
	Link string
}

// trouble are the kinds that mean the network misbehaves; a healthy node
// joining logs none of them.
func trouble(k EventKind) bool {
	switch k {
	case TokenLost, LinkDown, MembersLeft, QuorumLost, CPGFailed, HALostLock, WatchdogExp:
		return true
	}
	return false
}

// TrendOf counts events in (now-window, now]; untimed events all count.
func TrendOf(evs []Event, now time.Time, window time.Duration) *Trend {
	t := &Trend{To: now, From: now.Add(-window), Counts: map[EventKind]int{}, LastHour: map[EventKind]int{}, Peers: map[string]*PeerTrend{}}
	hours := map[time.Time]int{}
	for i := range evs {
		e := &evs[i]
		timed := !e.Time.IsZero()
		if timed {
			t.Timed = true
			if !e.Time.After(t.From) || e.Time.After(now.Add(time.Minute)) {
				continue
			}
		}
		t.Counts[e.Kind]++
		recent := timed && e.Time.After(now.Add(-time.Hour))
		if recent {
			t.LastHour[e.Kind]++
		}
		if e.Kind == LinkDown {
			p := t.peer(e.Peer)
			p.LinkDowns++
			p.Link = e.Link
			if recent {
				p.LastHour++
			}
		}
		for _, id := range e.Left {
			t.peer(id).Departures++
		}
		if e.Kind == TokenLost || e.Kind == LinkDown {
			if timed {
				h := e.Time.Truncate(time.Hour)
				hours[h]++
				if hours[h] > t.PeakHourCount || (hours[h] == t.PeakHourCount && h.After(t.PeakHour)) {
					t.PeakHour, t.PeakHourCount = h, hours[h]
				}
			}
		}
		if trouble(e.Kind) {
			if t.First == nil {
				t.First = e
			}
			t.Last = e
		}
	}
	return t
}

func (t *Trend) peer(id string) *PeerTrend {
	p := t.Peers[id]
	if p == nil {
		p = &PeerTrend{ID: id}
		t.Peers[id] = p
	}
	return p
}

// WorstPeer is the peer with the most link-downs, then departures; nil when
// no peer is named.
func (t *Trend) WorstPeer() *PeerTrend {
	ps := make([]*PeerTrend, 0, len(t.Peers))
	for _, p := range t.Peers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.LinkDowns != b.LinkDowns {
			return a.LinkDowns > b.LinkDowns
		}
		if a.Departures != b.Departures {
			return a.Departures > b.Departures
		}
		return a.ID < b.ID
	})
	if len(ps) == 0 {
		return nil
	}
	return ps[0]
}

// LastQuorumLoss is when the last loss of quorum in evs began, and whether
// quorum was still lost at the end of evs; zero when none.
func LastQuorumLoss(evs []Event) (lost time.Time, open bool) {
	for _, e := range evs {
		switch e.Kind {
		case QuorumLost:
			if !open {
				lost = e.Time
			}
			open = true
		case QuorumBack:
			open = false
		}
	}
	return lost, open
}
