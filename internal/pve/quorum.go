package pve

import (
	"errors"
	"strconv"
	"strings"
)

// Quorum is what `pvecm status` and `corosync-quorumtool -s` print. Both
// print the same three blocks (pvecm adds "Cluster information" first);
// a field the text did not carry stays zero and its Has* flag false.
type Quorum struct {
	// Cluster information (pvecm only).
	Cluster       string
	ConfigVersion int
	Transport     string

	Date     string
	Provider string
	Nodes    int
	// LocalID is the "Node ID" of the node that printed it.
	LocalID uint32
	RingID  string
	// Quorate is the "Quorate:" line, or the Quorate flag when the line
	// was cut off; HasQuorate says whether either was seen.
	Quorate    bool
	HasQuorate bool

	ExpectedVotes   int
	HighestExpected int
	TotalVotes      int
	QuorumVotes     int
	HasVotes        bool
	// Blocked is "Quorum: N Activity blocked": corosync says the node may
	// not act.
	Blocked bool
	// Flags are the words after "Flags:" (Quorate, Qdevice, 2Node,
	// WaitForAll, LastManStanding …); empty when the line is empty.
	Flags []string

	Members []Member
}

// Member is one row of the membership table.
type Member struct {
	NodeID uint32
	Votes  int
	// QDevice is the Qdevice column of a cluster with a quorum device:
	// "A,V,NMW" (alive, voting, not master-wins); empty without one.
	QDevice string
	// Name is the node's name or ring address; "Qdevice" for the quorum
	// device's own row.
	Name  string
	Local bool
}

// IsQDevice reports whether the row is the quorum device's own vote.
func (m Member) IsQDevice() bool { return m.NodeID == 0 && strings.EqualFold(m.Name, "Qdevice") }

// HasFlag reports whether the Flags line holds flag.
func (q *Quorum) HasFlag(flag string) bool {
	for _, f := range q.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// ErrNoQuorumInfo says a text holds none of the quorum fields.
var ErrNoQuorumInfo = errors.New("no corosync quorum information (expected `pvecm status` or `corosync-quorumtool -s` output)")

// ParseQuorum reads `pvecm status` or `corosync-quorumtool -s`. It copes
// with trailing spaces, an empty Flags line, a QDevice column, node IDs in
// hex (pvecm) or decimal (corosync-quorumtool), a missing header, pasted
// prompts and truncation; it fails only when no field at all is there.
func ParseQuorum(text string) (*Quorum, error) {
	q := &Quorum{}
	seen := 0
	inMembers, qdevCol := false, false
	for _, l := range lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || isPrompt(l) || strings.Trim(t, "-") == "" {
			continue
		}
		if strings.HasPrefix(t, "Nodeid") && strings.Contains(t, "Votes") {
			inMembers, qdevCol = true, strings.Contains(t, "Qdevice")
			seen++
			continue
		}
		if inMembers {
			if m, ok := parseMember(t, qdevCol); ok {
				q.Members = append(q.Members, m)
				continue
			}
		}
		k, v, ok := keyValue(t)
		if !ok {
			continue
		}
		seen++
		switch k {
		case "Name":
			q.Cluster = v
		case "Config Version":
			q.ConfigVersion, _ = strconv.Atoi(v)
		case "Transport":
			q.Transport = v
		case "Date":
			q.Date = v
		case "Quorum provider":
			q.Provider = v
		case "Nodes":
			q.Nodes, _ = strconv.Atoi(v)
		case "Node ID":
			q.LocalID, _ = parseNodeID(v)
		case "Ring ID":
			q.RingID = v
		case "Quorate":
			q.Quorate, q.HasQuorate = strings.EqualFold(v, "Yes"), true
		case "Expected votes":
			q.ExpectedVotes, _ = strconv.Atoi(v)
			q.HasVotes = true
		case "Highest expected":
			q.HighestExpected, _ = strconv.Atoi(v)
		case "Total votes":
			q.TotalVotes, _ = strconv.Atoi(v)
			q.HasVotes = true
		case "Quorum":
			f := strings.Fields(v)
			if len(f) > 0 {
				q.QuorumVotes, _ = strconv.Atoi(f[0])
			}
			q.Blocked = strings.Contains(v, "Activity blocked")
			q.HasVotes = true
		case "Flags":
			q.Flags = strings.Fields(v)
			if !q.HasQuorate {
				q.Quorate, q.HasQuorate = q.HasFlag("Quorate"), true
			}
		default:
			seen--
		}
	}
	if seen == 0 {
		return nil, ErrNoQuorumInfo
	}
	if q.Blocked {
		q.Quorate, q.HasQuorate = false, true
	}
	return q, nil
}

// parseMember reads "0x00000001          1    A,V,NMW 192.168.51.239 (local)".
func parseMember(t string, qdevCol bool) (Member, bool) {
	f := strings.Fields(t)
	if len(f) < 2 {
		return Member{}, false
	}
	id, err := parseNodeID(f[0])
	if err != nil {
		return Member{}, false
	}
	votes, err := strconv.Atoi(f[1])
	if err != nil {
		return Member{}, false
	}
	m := Member{NodeID: id, Votes: votes}
	rest := f[2:]
	if qdevCol && len(rest) > 0 && isQDeviceState(rest[0]) {
		m.QDevice, rest = rest[0], rest[1:]
	}
	if n := len(rest); n > 0 && rest[n-1] == "(local)" {
		m.Local, rest = true, rest[:n-1]
	}
	m.Name = strings.Join(rest, " ")
	return m, true
}

// isQDeviceState matches the Qdevice column: A or NA, V or NV, MW or NMW;
// or NR, a node not registered with the quorum device.
func isQDeviceState(s string) bool {
	if s == "NR" {
		return true
	}
	p := strings.Split(s, ",")
	if len(p) != 3 {
		return false
	}
	return (p[0] == "A" || p[0] == "NA") && (p[1] == "V" || p[1] == "NV") && (p[2] == "MW" || p[2] == "NMW")
}

func parseNodeID(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	v, err := strconv.ParseUint(s, base, 32)
	return uint32(v), err
}
