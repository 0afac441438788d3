package kube

import (
	"sort"
	"sync"
	"time"
)

// AddrMemory keeps, across the agent's cycles, the addresses each node
// had when last seen, so that a node whose InternalIP changes between
// two cycles is FM-C7 even when nothing in the cluster recorded the old
// one. Doctor runs once and has none.
type AddrMemory struct {
	mu    sync.Mutex
	seen  map[string][]string // node → its InternalIPs last cycle
	moved map[string]AddrChange
}

// AddrChange is a node address seen to change.
type AddrChange struct {
	Node string    `json:"node"`
	Old  string    `json:"old"`
	New  string    `json:"new"`
	At   time.Time `json:"at"` // the first cycle that saw the new address
}

// MovedFor is how long a seen change stays reported: long enough for
// the agent to raise it and for a person to read it, and it ends sooner
// if the node gets its old address back.
const MovedFor = 24 * time.Hour

// NewAddrMemory returns an empty memory.
func NewAddrMemory() *AddrMemory {
	return &AddrMemory{seen: map[string][]string{}, moved: map[string]AddrChange{}}
}

// Observe records the nodes' addresses at now and returns the changes
// seen in the last MovedFor, by node name.
func (m *AddrMemory) Observe(nodes []Node, now time.Time) []AddrChange {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range nodes {
		if len(n.InternalIPs) == 0 {
			continue
		}
		prev, ok := m.seen[n.Name]
		m.seen[n.Name] = append([]string(nil), n.InternalIPs...)
		if c, was := m.moved[n.Name]; was && contains(n.InternalIPs, c.Old) {
			delete(m.moved, n.Name) // the old address is back
			continue
		}
		if !ok || len(prev) == 0 || contains(n.InternalIPs, prev[0]) {
			continue
		}
		m.moved[n.Name] = AddrChange{Node: n.Name, Old: prev[0], New: n.InternalIPs[0], At: now}
	}
	var out []AddrChange
	for name, c := range m.moved {
		if now.Sub(c.At) > MovedFor {
			delete(m.moved, name)
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
