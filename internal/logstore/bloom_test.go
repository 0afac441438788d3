package logstore

import (
	"math/rand/v2"
	"testing"
)

// The search reads filters in place (bloomHas); they must answer as the
// filters that were written, and say no to most words never added.
func TestBloomInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	keys := make([]uint64, 5000)
	bl := newBloom(len(keys))
	for i := range keys {
		keys[i] = rng.Uint64()
		bl.add(keys[i])
	}
	buf := bl.appendTo(nil)
	for _, k := range keys {
		if !bloomHas(buf, k) || !bl.has(k) {
			t.Fatalf("key %x added but not found", k)
		}
	}
	fp := 0
	for range 100000 {
		k := rng.Uint64()
		if bloomHas(buf, k) != bl.has(k) {
			t.Fatalf("key %x: in place %v, in memory %v", k, bloomHas(buf, k), bl.has(k))
		}
		if bl.has(k) {
			fp++
		}
	}
	if fp > 2000 {
		t.Errorf("%d false positives in 100,000; want about 1 %%", fp)
	}
	if !bloomHas([]byte{0xff}, 1) {
		t.Error("a damaged filter must let the block through")
	}
}
