package probe

import (
	"math"
	"time"
)

// LocationResult is one location's latest verdict on one probe.
type LocationResult struct {
	Location string
	Status   Status
	At       time.Time
	// Isolated marks a location whose own connectivity is broken (see Isolated): its
	// verdicts say more about itself than about the target.
	Isolated bool
}

// Consensus merges the verdicts of several locations on one probe. The rule
// (docs/probes.md, "Several locations"):
//
//  1. One vote per location: its newest result.
//  2. Isolated locations do not vote, unless every location is isolated (then nobody can
//     be told apart from a real outage, and all vote).
//  3. With n voters, the probe is DOWN when at least quorum×n of them say DOWN (quorum 0.5:
//     1 of 1, 1 of 2, 2 of 3, 2 of 4; for a strict majority use 0.51). Otherwise it is
//     DEGRADED when at least quorum×n say DOWN or DEGRADED, else UP. A minority never
//     declares anything.
//  4. No voters: Unknown.
//
// quorum is clamped to (0, 1]: 0 or less means one location suffices, above 1 means all.
func Consensus(results []LocationResult, quorum float64) Status {
	newest := map[string]LocationResult{}
	for _, r := range results {
		if cur, ok := newest[r.Location]; !ok || r.At.After(cur.At) {
			newest[r.Location] = r
		}
	}
	voters := make([]LocationResult, 0, len(newest))
	for _, r := range newest {
		if !r.Isolated {
			voters = append(voters, r)
		}
	}
	if len(voters) == 0 {
		for _, r := range newest {
			voters = append(voters, r)
		}
	}
	if len(voters) == 0 {
		return Unknown
	}
	if quorum > 1 {
		quorum = 1
	}
	need := int(math.Ceil(quorum*float64(len(voters)) - 1e-9))
	need = max(need, 1)
	down, bad := 0, 0
	for _, r := range voters {
		switch r.Status {
		case Down:
			down++
			bad++
		case Degraded:
			bad++
		}
	}
	switch {
	case down >= need:
		return Down
	case bad >= need:
		return Degraded
	}
	return Up
}

// Recent keeps the results no older than maxAge at now: a location that stopped reporting
// has no say.
func Recent(results []LocationResult, now time.Time, maxAge time.Duration) []LocationResult {
	var out []LocationResult
	for _, r := range results {
		if now.Sub(r.At) <= maxAge {
			out = append(out, r)
		}
	}
	return out
}

// MinProbesForIsolation is how many probes a location must run before "all of them down at
// once" is taken as the location's own trouble rather than the targets'.
const MinProbesForIsolation = 3

// Isolated reports whether one location's latest round (the status of each of its probes)
// shows its own connectivity broken: at least MinProbesForIsolation probes, all DOWN.
func Isolated(round []Status) bool {
	if len(round) < MinProbesForIsolation {
		return false
	}
	for _, s := range round {
		if s != Down {
			return false
		}
	}
	return true
}
